package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
)

// testApp returns an app with captured output and the given environment.
func testApp(t *testing.T, env map[string]string, stdin string) (*app, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["PARLEY_CONFIG"]; !ok {
		env["PARLEY_CONFIG"] = filepath.Join(t.TempDir(), "parley", "config.json")
	}
	a := &app{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string { return env[k] },
	}
	return a, &out, &errb
}

func TestConfigRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "config.json")
	c, err := loadConfig(path)
	if err != nil || !reflect.DeepEqual(c, &fileConfig{}) {
		t.Fatalf("missing file: %+v, %v", c, err)
	}
	want := &fileConfig{
		Server: "http://chat.example:8080", Token: "secret-token", UserID: "u1", DeviceID: "d1",
		Username: "alice", ExpiresAt: 1700000000000, Cursors: map[string]int64{"c1": 4, "c2": 0},
	}
	if err := saveConfig(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: got %+v, want %+v", got, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(filepath.Dir(path))
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("config dir mode %v, want 0700", dst.Mode().Perm())
	}
	// Overwrite keeps the mode and leaves no temporary files behind.
	want.Token = ""
	if err := saveConfig(path, want); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("files in config dir: %v", entries)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "secret-token") || !strings.Contains(string(b), `"username": "alice"`) {
		t.Fatalf("config file:\n%s", b)
	}
	// A corrupt file is an error that names the file.
	if err := os.WriteFile(path, []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt config: %v", err)
	}
}

func TestConfigPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if p, _ := configPath("/flag.json", env(map[string]string{"PARLEY_CONFIG": "/env.json"})); p != "/flag.json" {
		t.Errorf("flag: %s", p)
	}
	if p, _ := configPath("", env(map[string]string{"PARLEY_CONFIG": "/env.json"})); p != "/env.json" {
		t.Errorf("env: %s", p)
	}
	p, err := configPath("", env(nil))
	if dir, derr := os.UserConfigDir(); derr == nil {
		if err != nil || p != filepath.Join(dir, "parley", "config.json") {
			t.Errorf("default: %s, %v", p, err)
		}
	}
}

func TestServerResolution(t *testing.T) {
	tests := []struct {
		flag, env, file, want string
	}{
		{"", "", "", defaultServer},
		{"", "", "http://file:1", "http://file:1"},
		{"", "envhost:2", "http://file:1", "http://envhost:2"},
		{"https://flag:3/", "envhost:2", "http://file:1", "https://flag:3"},
		{"", "a:1, http://b:2/ ,", "", "http://a:1,http://b:2"},
		{"", "", "http://a:1,http://b:2", "http://a:1,http://b:2"},
	}
	for _, tc := range tests {
		a, _, _ := testApp(t, map[string]string{"PARLEY_SERVER": tc.env}, "")
		a.serverFlag = tc.flag
		a.cfg = &fileConfig{Server: tc.file}
		if got := a.server(); got != tc.want {
			t.Errorf("flag=%q env=%q file=%q: %q, want %q", tc.flag, tc.env, tc.file, got, tc.want)
		}
	}
}

func TestParseFlagsAnywhere(t *testing.T) {
	tests := []struct {
		args      []string
		stopAfter int
		wantPos   []string
		wantN     int64
		wantB     bool
		wantErr   bool
	}{
		{[]string{"a", "b"}, -1, []string{"a", "b"}, 0, false, false},
		{[]string{"--n", "3", "a"}, -1, []string{"a"}, 3, false, false},
		{[]string{"a", "--n=4", "b", "-b"}, -1, []string{"a", "b"}, 4, true, false},
		{[]string{"a", "--", "--n", "5"}, -1, []string{"a", "--n", "5"}, 0, false, false},
		// send: flags stop after the conversation, the rest is text.
		{[]string{"-b", "@bob", "--n", "5", "-x"}, 1, []string{"@bob", "--n", "5", "-x"}, 0, true, false},
		{[]string{"@bob", "--", "-5", "degrees"}, 1, []string{"@bob", "-5", "degrees"}, 0, false, false},
		{[]string{"--n", "x"}, -1, nil, 0, false, true},
		{[]string{"--nope"}, -1, nil, 0, false, true},
		{nil, -1, nil, 0, false, false},
	}
	for _, tc := range tests {
		a, _, _ := testApp(t, nil, "")
		fs := flag.NewFlagSet("parley test", flag.ContinueOnError)
		n := fs.Int64("n", 0, "")
		b := fs.Bool("b", false, "")
		pos, err := a.parse(fs, tc.args, tc.stopAfter)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.args, err)
			continue
		}
		if tc.wantErr {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Errorf("%q: error %T is not a usage error", tc.args, err)
			}
			continue
		}
		if !reflect.DeepEqual(pos, tc.wantPos) && !(len(pos) == 0 && len(tc.wantPos) == 0) {
			t.Errorf("%q: positional %q, want %q", tc.args, pos, tc.wantPos)
		}
		if *n != tc.wantN || *b != tc.wantB {
			t.Errorf("%q: n=%d b=%v", tc.args, *n, *b)
		}
	}
}

func TestSendArgs(t *testing.T) {
	tests := []struct {
		args       []string
		stdin      string
		wantTarget string
		wantText   string
		wantErr    string
	}{
		{[]string{"@bob", "hello", "there"}, "", "@bob", "hello there", ""},
		{[]string{"C1", "-"}, "from\nstdin\n\n", "C1", "from\nstdin", ""},
		{[]string{"C1", "a", "-"}, "ignored", "C1", "a -", ""},
		{[]string{"C1", "-"}, "", "", "", "empty"},
		{[]string{"C1", "  "}, "", "", "", "empty"},
		{[]string{"C1"}, "", "", "", "missing the message text"},
		{nil, "", "", "", "missing the conversation"},
	}
	for _, tc := range tests {
		target, text, err := sendArgs(tc.args, strings.NewReader(tc.stdin))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || target != tc.wantTarget || text != tc.wantText {
			t.Errorf("%q: %q %q %v", tc.args, target, text, err)
		}
	}
}

func TestHelpAndUsage(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		a, out, errb := testApp(t, nil, "")
		code := a.main(context.Background(), args)
		return code, out.String(), errb.String()
	}
	code, out, _ := run("--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("--help does not list %s", c.name)
		}
	}
	for _, c := range commands {
		code, out, _ := run(c.name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: parley "+c.name) || !strings.Contains(out, "-server") {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, out)
		}
		code2, out2, _ := run("help", c.name)
		if code2 != 0 || out2 != out {
			t.Errorf("help %s differs from %s --help", c.name, c.name)
		}
	}
	_, out, _ = run("send", "--help")
	for _, f := range []string{"-reply-to", "-type", "-media-id", "-id", "-timeout"} {
		if !strings.Contains(out, f) {
			t.Errorf("send --help lacks %s", f)
		}
	}
	code, _, errs := run()
	if code != 2 || !strings.Contains(errs, "Commands:") {
		t.Errorf("no args: exit %d, %s", code, errs)
	}
	code, _, errs = run("frobnicate")
	if code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %s", code, errs)
	}
	for _, args := range [][]string{
		{"send"}, {"send", "@bob"}, {"history"}, {"history", "a", "b"}, {"conversations", "x"},
		{"groups"}, {"groups", "explode"}, {"groups", "add", "g1"}, {"groups", "rename", "g1"},
		{"login"}, {"register", "a", "b"}, {"whoami", "x"}, {"history", "--before", "x", "c"},
		{"history", "--before", "3", "--after", "1", "c"}, {"listen", "x"}, {"logout", "x"},
	} {
		code, _, errs := run(args...)
		if code != 2 || !strings.Contains(errs, "parley "+args[0]+": ") || !strings.Contains(errs, "--help") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	// Commands that need a session say how to get one.
	code, _, errs = run("whoami")
	if code != 1 || !strings.Contains(errs, "parley login") {
		t.Errorf("whoami logged out: exit %d, %q", code, errs)
	}
}

func TestDescribeError(t *testing.T) {
	e := &client.APIError{Status: 403, Code: "forbidden", Message: "not a member of this conversation"}
	if got := describeError(e); got != "not a member of this conversation (status 403 forbidden)" {
		t.Errorf("got %q", got)
	}
	e = &client.APIError{Status: 429, Code: "rate_limited", Message: "slow down", RetryAfter: 2 * time.Second}
	if got := describeError(e); !strings.Contains(got, "retry after 2s") {
		t.Errorf("got %q", got)
	}
	e = &client.APIError{Status: 401, Code: "unauthorized", Message: "bad token"}
	if got := describeError(e); !strings.Contains(got, "parley login") {
		t.Errorf("got %q", got)
	}
	if got := describeError(errors.New("boom")); got != "boom" {
		t.Errorf("got %q", got)
	}
}

func TestReadPassword(t *testing.T) {
	a, _, errb := testApp(t, nil, "hunter22\nrest\n")
	if pw, err := a.readPassword(false, "Password: "); err != nil || pw != "hunter22" || errb.String() != "Password: " {
		t.Fatalf("prompt: %q %v %q", pw, err, errb.String())
	}
	a, _, errb = testApp(t, map[string]string{"PARLEY_PASSWORD": "from-env"}, "")
	if pw, err := a.readPassword(false, "Password: "); err != nil || pw != "from-env" || errb.Len() != 0 {
		t.Fatalf("env: %q %v", pw, err)
	}
	a, _, errb = testApp(t, map[string]string{"PARLEY_PASSWORD": "from-env"}, "stdin-pw")
	if pw, err := a.readPassword(true, "Password: "); err != nil || pw != "stdin-pw" || errb.Len() != 0 {
		t.Fatalf("--password-stdin: %q %v", pw, err)
	}
	a, _, _ = testApp(t, nil, "")
	if _, err := a.readPassword(true, ""); err == nil {
		t.Fatal("empty stdin accepted")
	}
}

func TestFormatting(t *testing.T) {
	if shortID("01HXYZABCDEFGHJKMNPQRSTVWX") != "PQRSTVWX" || shortID("abc") != "abc" {
		t.Errorf("shortID")
	}
	if got := oneLine("a\n b\tc  d", 5); got != "a b …" {
		t.Errorf("oneLine = %q", got)
	}
	for _, tc := range []struct {
		m    client.Message
		want string
	}{
		{client.Message{Content: "hi", ContentType: "text"}, "hi"},
		{client.Message{Content: "{}", ContentType: "e2ee"}, "[encrypted message]"},
		{client.Message{Content: "cat.png", ContentType: "image", MediaID: "m1"}, "[image m1] cat.png"},
		{client.Message{ContentType: "file", MediaID: "m2", Media: &client.Media{Name: "minutes.pdf", Size: 30_000}}, "[file m2 minutes.pdf]"},
	} {
		if got := renderContent(&tc.m); got != tc.want {
			t.Errorf("renderContent(%+v) = %q", tc.m, got)
		}
	}
	var buf bytes.Buffer
	p := &printer{w: &buf, errw: &buf, names: &nameCache{names: map[string]string{"u1": "alice", "u2": "bob"}},
		now: func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local) }}
	ts := time.Date(2025, 1, 2, 10, 11, 12, 0, time.Local).UnixMilli()
	ctx := context.Background()
	p.print(ctx, client.Event{Kind: client.EventMessage, Message: &client.Message{ConversationID: "01HCONVERSATIONABCDEFGH", SenderID: "u1", Content: "hello\nworld", ContentType: "text", Timestamp: ts}})
	p.print(ctx, client.Event{Kind: client.EventStatus, Status: &client.StatusUpdate{ConversationID: "01HCONVERSATIONABCDEFGH", UserID: "u2", Seq: 12, Status: "read", Timestamp: ts}})
	p.print(ctx, client.Event{Kind: client.EventTyping, Typing: &client.TypingUpdate{ConversationID: "01HCONVERSATIONABCDEFGH", UserID: "u2", State: "typing"}})
	p.print(ctx, client.Event{Kind: client.EventPresence, Presence: &client.Presence{UserID: "u2", Status: "online"}})
	want := "[10:11:12] ABCDEFGH <alice> hello\n    world\n" +
		"[10:11:12] ABCDEFGH * bob read up to #12 (✓✓ read)\n" +
		"[03:04:05] ABCDEFGH * bob is typing\n" +
		"[03:04:05] * bob is online\n"
	if buf.String() != want {
		t.Errorf("printer output:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// listen says when a receipt comes from one of your own other devices, and
// prints presence only when it changes (a group change subscribes again and
// the server repeats the current state).
func TestListenOwnReceiptsAndPresenceChanges(t *testing.T) {
	var buf bytes.Buffer
	p := &printer{w: &buf, errw: &buf, names: &nameCache{selfID: "u1", names: map[string]string{"u1": "alice", "u2": "bob"}},
		now: func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local) }}
	ts := time.Date(2025, 1, 2, 10, 11, 12, 0, time.Local).UnixMilli()
	ctx := context.Background()
	conv := "01HCONVERSATIONABCDEFGH"
	p.print(ctx, client.Event{Kind: client.EventStatus, Status: &client.StatusUpdate{ConversationID: conv, UserID: "u1", Seq: 14, Status: "delivered", Timestamp: ts}})
	p.print(ctx, client.Event{Kind: client.EventStatus, Status: &client.StatusUpdate{ConversationID: conv, UserID: "u1", Seq: 15, Status: "read", Timestamp: ts}})
	online := client.Event{Kind: client.EventPresence, Presence: &client.Presence{UserID: "u2", Status: "online"}}
	p.print(ctx, online)
	p.print(ctx, online) // repeated after a group change
	p.print(ctx, client.Event{Kind: client.EventPresence, Presence: &client.Presence{UserID: "u2", Status: "offline"}})
	p.print(ctx, online)
	want := "[10:11:12] ABCDEFGH * you received up to #14 on another device\n" +
		"[10:11:12] ABCDEFGH * you read up to #15 on another device\n" +
		"[03:04:05] * bob is online\n" +
		"[03:04:05] * bob is offline\n" +
		"[03:04:05] * bob is online\n"
	if buf.String() != want {
		t.Errorf("printer output:\n%s\nwant:\n%s", buf.String(), want)
	}
}
