package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckName refuses (ErrInvalid) a display name, group name or device name
// holding control characters (Cc: escape sequences, newlines) or format
// characters (Cf: bidirectional overrides such as U+202E, zero-width
// joiners), with which one user could make a name read as another's, or
// "\u202egpj.exe" read as "exe.jpg".
func CheckName(field, name string) error {
	for _, r := range name {
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return errf(ErrInvalid, "%s must not contain control or bidirectional formatting characters (U+%04X)", field, r)
		}
	}
	return nil
}

// CleanFileName makes a client's file name safe to show: control and format
// characters are dropped, path separators become "_", surrounding spaces and
// dots are trimmed, and it is cut to 255 bytes. It may return "".
func CleanFileName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			b.WriteByte('_')
		case r == unicode.ReplacementChar, unicode.Is(unicode.Cc, r), unicode.Is(unicode.Cf, r):
		default:
			b.WriteRune(r)
		}
	}
	out := strings.Trim(b.String(), " .")
	for len(out) > 255 {
		_, size := utf8.DecodeLastRuneInString(out)
		out = out[:len(out)-size]
	}
	return out
}
