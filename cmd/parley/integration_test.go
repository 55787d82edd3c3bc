package main

// The CLI against a real in-process parleyd (internal/server/servertest).

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliUser is one user of the CLI with its own config file.
type cliUser struct {
	t      *testing.T
	config string
	server string
}

func newCLIUser(t *testing.T, server, name string) *cliUser {
	return &cliUser{t: t, config: filepath.Join(t.TempDir(), name, "config.json"), server: server}
}

// run runs the CLI and returns exit status, stdout and stderr.
func (u *cliUser) run(ctx context.Context, stdin string, args ...string) (int, string, string) {
	var out, errb syncBuffer
	env := map[string]string{"PARLEY_CONFIG": u.config, "PARLEY_SERVER": u.server}
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	code := a.main(ctx, args)
	return code, out.String(), errb.String()
}

// ok runs the CLI and fails the test unless it exits 0.
func (u *cliUser) ok(stdin string, args ...string) string {
	u.t.Helper()
	code, out, errs := u.run(context.Background(), stdin, args...)
	if code != 0 {
		u.t.Fatalf("parley %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestCLIAgainstServer(t *testing.T) {
	srv := servertest.Start(t)
	alice := newCLIUser(t, srv.URL, "alice")
	bob := newCLIUser(t, srv.URL, "bob")
	carol := newCLIUser(t, srv.URL, "carol")

	out := alice.ok("secret-pass\n", "register", "--password-stdin", "--display-name", "Alice A.", "--login", "alice")
	if !strings.Contains(out, "registered alice") || !strings.Contains(out, "logged in as alice") {
		t.Fatalf("register --login: %s", out)
	}
	bob.ok("bob-password\n", "register", "--password-stdin", "bob")
	bob.ok("bob-password\n", "login", "--password-stdin", "bob")
	carol.ok("carol-password\n", "register", "--password-stdin", "--login", "carol")

	// The config file holds the session, privately.
	st, err := os.Stat(alice.config)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st, err)
	}
	cfg, err := loadConfig(alice.config)
	if err != nil || cfg.Token == "" || cfg.UserID == "" || cfg.DeviceID == "" || cfg.Username != "alice" || cfg.Server != srv.URL {
		t.Fatalf("config %+v %v", cfg, err)
	}

	// Errors show the server's message and status.
	code, _, errs := bob.run(context.Background(), "long-enough\n", "register", "--password-stdin", "alice")
	if code != 1 || !strings.Contains(errs, "status 409") {
		t.Fatalf("duplicate register: %d %s", code, errs)
	}
	code, _, errs = bob.run(context.Background(), "wrong-password\n", "login", "--password-stdin", "--config", filepath.Join(t.TempDir(), "c.json"), "bob")
	// A refused login says so, not "your session is no longer valid: run parley login".
	if code != 1 || !strings.Contains(errs, "wrong username or password") || strings.Contains(errs, "session") {
		t.Fatalf("bad login: %d %s", code, errs)
	}

	// Logging in again reuses the device.
	alice.ok("secret-pass\n", "login", "--password-stdin", "alice")
	cfg2, _ := loadConfig(alice.config)
	if cfg2.DeviceID != cfg.DeviceID || cfg2.Token == cfg.Token {
		t.Fatalf("re-login: device %s -> %s", cfg.DeviceID, cfg2.DeviceID)
	}
	out = alice.ok("", "whoami")
	if !strings.Contains(out, "alice (Alice A.)") || !strings.Contains(out, cfg.DeviceID) || strings.Count(out, "(this device)") != 1 {
		t.Fatalf("whoami: %s", out)
	}

	// Bob listens while Alice sends.
	lctx, stopListen := context.WithCancel(context.Background())
	var lout, lerr syncBuffer
	listenDone := make(chan int, 1)
	go func() {
		env := map[string]string{"PARLEY_CONFIG": bob.config, "PARLEY_SERVER": srv.URL}
		a := &app{stdin: strings.NewReader(""), stdout: &lout, stderr: &lerr, getenv: func(k string) string { return env[k] }}
		listenDone <- a.main(lctx, []string{"listen"})
	}()
	waitFor(t, "listen to connect", func() bool { return strings.Contains(lerr.String(), "* connected") })

	out = alice.ok("", "send", "@bob", "hello", "bob")
	m := regexp.MustCompile(`sent to (\S+) as seq 1 `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("send: %s", out)
	}
	conv := m[1]
	alice.ok("second line\nthird line\n", "send", "--reply-to", "1", conv[len(conv)-6:], "-")
	waitFor(t, "listen to print both messages", func() bool {
		return strings.Contains(lout.String(), "<alice> hello bob") && strings.Contains(lout.String(), "<alice> (reply to #1) second line\n    third line")
	})
	if !strings.Contains(lout.String(), " "+shortID(conv)+" <alice> hello bob") {
		t.Fatalf("listen line format:\n%s", lout.String())
	}
	stopListen()
	select {
	case code := <-listenDone:
		if code != 0 {
			t.Fatalf("listen exit %d: %s", code, lerr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not stop on cancel")
	}
	bcfg, _ := loadConfig(bob.config)
	if bcfg.Cursors[conv] != 2 {
		t.Fatalf("listen saved cursors %v", bcfg.Cursors)
	}

	// While Bob is away, Alice sends more; listen --resume prints them.
	alice.ok("", "send", conv, "while you were away")
	lctx2, stopListen2 := context.WithCancel(context.Background())
	var lout2, lerr2 syncBuffer
	go func() {
		env := map[string]string{"PARLEY_CONFIG": bob.config, "PARLEY_SERVER": srv.URL}
		a := &app{stdin: strings.NewReader(""), stdout: &lout2, stderr: &lerr2, getenv: func(k string) string { return env[k] }}
		listenDone <- a.main(lctx2, []string{"listen", "--resume"})
	}()
	waitFor(t, "listen --resume to print the missed message", func() bool {
		return strings.Contains(lout2.String(), "<alice> while you were away")
	})
	stopListen2()
	<-listenDone
	if strings.Contains(lout2.String(), "hello bob") {
		t.Fatalf("--resume printed old messages again:\n%s", lout2.String())
	}

	out = bob.ok("", "history", "@alice")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "#1") || !strings.Contains(lines[0], "<alice> hello bob") ||
		!strings.Contains(lines[3], "#3") {
		t.Fatalf("history:\n%s", out)
	}
	// A reply shows what it quotes; a second line stays in the text column,
	// the seq and time columns clear.
	if !strings.Contains(lines[1], "#2 ") || !strings.Contains(lines[1], "<alice> (reply to #1 <alice>: hello bob) second line") {
		t.Fatalf("history: the reply is not marked:\n%s", out)
	}
	if col := strings.Index(lines[0], "hello bob"); col < 0 || lines[2] != strings.Repeat(" ", col)+"third line" {
		t.Fatalf("history: the second line of #2 is not under the text column:\n%s", out)
	}
	code, out, errs = bob.run(context.Background(), "", "history", "--limit", "1", "--before", "3", conv)
	if code != 0 || !strings.Contains(out, "#2") || strings.Contains(out, "#1 ") || !strings.Contains(errs, "--before 2") {
		t.Fatalf("history page: %d\n%s\n%s", code, out, errs)
	}
	out = bob.ok("", "conversations")
	if !strings.Contains(out, conv) || !strings.Contains(out, "@alice") || !strings.Contains(out, "while you were away") {
		t.Fatalf("conversations:\n%s", out)
	}

	// Groups.
	out = alice.ok("", "groups", "create", "team", "bob")
	gm := regexp.MustCompile(`created group (\S+) "team": alice \(admin\), bob`).FindStringSubmatch(out)
	if gm == nil {
		t.Fatalf("groups create: %s", out)
	}
	group := gm[1]
	if out := alice.ok("", "groups", "add", group, "@carol"); !strings.Contains(out, "carol") {
		t.Fatalf("groups add: %s", out)
	}
	if out := alice.ok("", "groups", "rename", group, "the", "team"); !strings.Contains(out, `"the team"`) {
		t.Fatalf("groups rename: %s", out)
	}
	code, _, errs = bob.run(context.Background(), "", "groups", "rename", group, "mine")
	if code != 1 || !strings.Contains(errs, "status 403") {
		t.Fatalf("non-admin rename: %d %s", code, errs)
	}
	carol.ok("", "send", group, "hi team")
	if out := bob.ok("", "history", group); !strings.Contains(out, "<carol> hi team") {
		t.Fatalf("group history: %s", out)
	}
	if out := alice.ok("", "groups", "remove", group, "carol"); !strings.Contains(out, "removed carol") {
		t.Fatalf("groups remove: %s", out)
	}
	code, _, errs = carol.run(context.Background(), "", "send", group, "still here?")
	if code != 1 || !strings.Contains(errs, "status 403") {
		t.Fatalf("send after removal: %d %s", code, errs)
	}
	code, _, errs = alice.run(context.Background(), "", "send", "@nobody", "hi")
	if code != 1 || !strings.Contains(errs, `no user named "nobody"`) {
		t.Fatalf("send to unknown user: %d %s", code, errs)
	}

	// Logout.
	alice.ok("", "logout")
	code, _, errs = alice.run(context.Background(), "", "whoami")
	if code != 1 || !strings.Contains(errs, "not logged in") {
		t.Fatalf("whoami after logout: %d %s", code, errs)
	}
	cfg3, _ := loadConfig(alice.config)
	if cfg3.Token != "" || cfg3.Username != "alice" || cfg3.DeviceID != cfg.DeviceID {
		t.Fatalf("config after logout %+v", cfg3)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
