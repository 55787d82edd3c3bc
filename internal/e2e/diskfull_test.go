package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
	"github.com/parley-chat/parley/internal/testskip"
)

// smallDisk mounts a tmpfs of the given size, or skips when this process may
// not mount (not root, no tmpfs).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		testskip.Skipf(t, "cannot mount a small tmpfs here (%v: %s): disk-full test skipped", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// Also take the last partial block.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// TestDiskFull: with the data disk full, sends are refused with 503 (never a
// false ack), nothing acked is lost, and the server recovers by itself once
// space returns.
func TestDiskFull(t *testing.T) {
	dir := smallDisk(t, "24m")
	srv := servertest.Start(t, func(c *server.Config) { c.DataDir = filepath.Join(dir, "data") })
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	a := dial(t, srv, alice.Token)
	acked := map[string]int64{}
	send := func(id string) frame {
		a.send(sendText(conv, id, strings.Repeat("disk full test ", 200)))
		for {
			f := a.next(10 * time.Second)
			if t := f.str("type"); t != "ack" && t != "error" {
				continue
			}
			if f.str("type") == "ack" {
				acked[id] = f.num("seq")
			}
			return f
		}
	}
	for i := 0; i < 20; i++ {
		if f := send(fmt.Sprintf("before-%d", i)); f.str("type") != "ack" {
			t.Fatalf("send before the disk filled: %v", f)
		}
	}
	filler := fill(t, dir)
	refused := 0
	for i := 0; i < 200 && refused < 5; i++ {
		f := send(fmt.Sprintf("full-%d", i))
		if f.str("type") == "error" {
			if f.num("status") != 503 {
				t.Fatalf("send on a full disk: %v, want 503", f)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no send was refused on a full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Recovery without a restart.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		f := send(fmt.Sprintf("after-%d", i))
		if f.str("type") == "ack" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refusing after space returned: %v", f)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every acked message is there, seqs gapless.
	var page struct {
		Messages []frame `json:"messages"`
	}
	api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages?after=0&limit=200", bob.Token, nil, &page)
	stored := map[string]int64{}
	for i, m := range page.Messages {
		if m.num("seq") != int64(i+1) {
			t.Fatalf("seq %d at position %d: gap after the disk filled", m.num("seq"), i)
		}
		stored[m.str("client_message_id")] = m.num("seq")
	}
	for id, seq := range acked {
		if stored[id] != seq {
			t.Fatalf("acked message %s (seq %d) missing after the disk filled", id, seq)
		}
	}
	t.Logf("%d acked, %d refused with 503 while full, recovered without restart", len(acked), refused)
}
