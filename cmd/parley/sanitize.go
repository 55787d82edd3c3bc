package main

import (
	"fmt"
	"strings"
	"unicode"
)

// sanitize makes text from other users (messages, names, file names, error
// messages that echo them) safe to print on a terminal: C0 controls but
// newline and tab, DEL and C1 controls (escape sequences that move the
// cursor, retitle the window or write the clipboard with OSC 52; a carriage
// return that overwrites a line) are shown as ^X or <U+XXXX>, and so are
// format characters (bidirectional overrides and isolates that reorder a
// line, zero-width characters). Callers indent what follows a newline so
// text cannot pass for a line of its own.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !unsafeRune(r):
			b.WriteRune(r)
		case r < 0x20:
			b.WriteByte('^')
			b.WriteByte(byte(r) + '@')
		case r == 0x7f:
			b.WriteString("^?")
		default:
			fmt.Fprintf(&b, "<U+%04X>", r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r)
}
