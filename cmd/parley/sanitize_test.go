package main

import (
	"strings"
	"testing"

	"github.com/parley-chat/parley/client"
)

// Finding 7: other users' escape sequences never reach the terminal raw.
func TestSanitizeNeutralizesControls(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcödé 🙂":  "plain text, ünïcödé 🙂",
		"two\nlines\ttab":        "two\nlines\ttab",
		"\x1b]52;c;ZXZpbA==\x07": "^[]52;c;ZXZpbA==^G",
		"\x1b]0;pwned\x07title":  "^[]0;pwned^Gtitle",
		"real\rfake":             "real^Mfake",
		"\u202egpj.exe":          "<U+202E>gpj.exe",
		"a\u200bb\u2066c\u2069":  "a<U+200B>b<U+2066>c<U+2069>",
		"c1\u009b31m":            "c1<U+009B>31m",
		"del\x7f":                "del^?",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	m := &client.Message{ContentType: client.ContentText, Content: "hi\x1b[2J\x1b[H"}
	if got := renderContent(m); strings.ContainsRune(got, 0x1b) {
		t.Fatalf("renderContent kept ESC: %q", got)
	}
	f := &client.Message{ContentType: "file", MediaID: "m1", Media: &client.Media{Name: "\u202egpj.exe"}}
	if got := renderContent(f); strings.ContainsRune(got, '\u202e') {
		t.Fatalf("renderContent kept a bidi override in a file name: %q", got)
	}
}
