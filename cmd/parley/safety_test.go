package main

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/server/servertest"
)

func TestCLIBlocksAndReports(t *testing.T) {
	srv := servertest.Start(t)
	alice := newCLIUser(t, srv.URL, "alice")
	bob := newCLIUser(t, srv.URL, "bob")
	alice.ok("alice-password\n", "register", "--password-stdin", "--login", "alice")
	bob.ok("bob-password\n", "register", "--password-stdin", "--login", "bob")
	bob.ok("", "send", "@alice", "hello \x1b]0;owned\x07")

	if out := alice.ok("", "history", "@bob"); strings.ContainsRune(out, 0x1b) || !strings.Contains(out, "^[]0;owned^G") {
		t.Fatalf("history printed raw escapes: %q", out)
	}
	if out := alice.ok("", "report", "@bob", "1", "escape", "sequences"); !strings.Contains(out, "reported message #1") {
		t.Fatalf("report: %s", out)
	}
	if out := alice.ok("", "blocks", "add", "@bob"); !strings.Contains(out, "blocked @bob") {
		t.Fatalf("blocks add: %s", out)
	}
	if out := alice.ok("", "blocks"); !strings.Contains(out, "@bob") {
		t.Fatalf("blocks list: %s", out)
	}
	code, _, errs := bob.run(context.Background(), "", "send", "@alice", "still there?")
	if code != 1 || !strings.Contains(errs, "status 403 blocked") {
		t.Fatalf("send to a blocker: exit %d, %s", code, errs)
	}
	alice.ok("", "blocks", "remove", "bob")
	if code, _, errs := alice.run(context.Background(), "", "blocks", "list"); code != 0 || !strings.Contains(errs, "nobody") {
		t.Fatalf("blocks after remove: %d %s", code, errs)
	}
}
