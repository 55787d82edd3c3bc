package media

import (
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

func TestUploadStateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	u, err := OpenUploads(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	info, err := u.Create("alice", 10, map[string]string{"filename": "a.txt"}, "MEDIA1", now)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := u.Append(info.ID, 0, strings.NewReader("hello")); err != nil || n != 5 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	var mismatch *OffsetMismatchError
	if _, err := u.Append(info.ID, 3, strings.NewReader("xx")); !errors.As(err, &mismatch) || mismatch.Offset != 5 || !errors.Is(err, chat.ErrConflict) {
		t.Fatalf("Append at a stale offset = %v", err)
	}
	// A body cut short keeps what arrived.
	n, err := u.Append(info.ID, 5, io.MultiReader(strings.NewReader("wo"), &failing{}))
	if err == nil || n != 7 {
		t.Fatalf("broken Append = %d, %v; want 7 and the read error", n, err)
	}
	u2, err := OpenUploads(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := u2.Get(info.ID)
	if err != nil || got.Offset != 7 || got.Owner != "alice" || got.MediaID != "MEDIA1" || got.Metadata["filename"] != "a.txt" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	// Too much data: the excess is refused.
	if n, err := u2.Append(info.ID, 7, strings.NewReader("rld!!")); n != 10 || !errors.Is(err, chat.ErrBadRequest) {
		t.Fatalf("Append past the length = %d, %v", n, err)
	}
	f, _ := u2.Data(info.ID)
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "helloworld" {
		t.Fatalf("data %q", b)
	}
	if err := u2.MarkDone(got, now); err != nil {
		t.Fatal(err)
	}
	if got, err := u2.Get(info.ID); err != nil || !got.Done || got.Offset != 10 {
		t.Fatalf("done: %+v, %v", got, err)
	}
	if _, err := u2.Get("../../etc/passwd"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("Get of a path: %v", err)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestLockInterruptsOnlyStalledHolders(t *testing.T) {
	u, err := OpenUploads(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var interrupted atomic.Bool
	h, err := u.Lock(t.Context(), "x", func() { interrupted.Store(true) }, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A holder that keeps receiving is not interrupted: the newcomer gives up.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				h.Active()
			}
		}
	}()
	if _, err := u.Lock(t.Context(), "x", nil, 2*StaleAfter); !errors.Is(err, ErrUploadLocked) || interrupted.Load() {
		t.Fatalf("Lock against an active holder = %v, interrupted %v", err, interrupted.Load())
	}
	close(stop)
	// A stalled holder is interrupted, and the newcomer gets the upload
	// once it lets go.
	done := make(chan struct{})
	go func() {
		for !interrupted.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		h.Unlock()
		close(done)
	}()
	h2, err := u.Lock(t.Context(), "x", nil, 5*StaleAfter)
	if err != nil {
		t.Fatalf("Lock against a stalled holder: %v", err)
	}
	<-done
	h2.Unlock()
	h2.Unlock() // idempotent
	if len(u.locks) != 0 {
		t.Fatalf("locks left: %v", u.locks)
	}
}

func TestExpireRemovesIdleUploads(t *testing.T) {
	u, err := OpenUploads(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old, _ := u.Create("a", 5, nil, "M1", time.Now().Add(-2*time.Hour))
	busy, _ := u.Create("a", 5, nil, "M2", time.Now().Add(-2*time.Hour))
	fresh, _ := u.Create("a", 5, nil, "M3", time.Now())
	h, _ := u.Lock(t.Context(), busy.ID, nil, time.Second)
	defer h.Unlock()
	n, err := u.Expire(time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	for id, want := range map[string]bool{old.ID: false, busy.ID: true, fresh.ID: true} {
		if _, err := u.Get(id); (err == nil) != want {
			t.Errorf("upload %s present = %v, want %v", id, err == nil, want)
		}
	}
}

// After a power cut an upload's file can hold bytes past its last synced
// append (written, never answered, some pages torn): reopening cuts them
// off, so the client resumes at the offset it was last told and the file
// holds exactly the bytes it sent.
func TestReopenCutsUnsyncedTail(t *testing.T) {
	dir := t.TempDir()
	u, err := OpenUploads(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := u.Create("alice", 20, nil, "MEDIA1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := u.Append(info.ID, 0, strings.NewReader("hello")); err != nil || n != 5 {
		t.Fatalf("Append = %d, %v", n, err)
	}
	// What the power cut left of an unanswered append.
	f, err := os.OpenFile(u.dataPath(info.ID), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("\x00\x00garbage")); err != nil {
		t.Fatal(err)
	}
	f.Close()

	u2, err := OpenUploads(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := u2.Get(info.ID)
	if err != nil || got.Offset != 5 {
		t.Fatalf("offset after reopening = %d, %v; want the 5 bytes answered", got.Offset, err)
	}
	if n, err := u2.Append(info.ID, 5, strings.NewReader(" world, again")); err != nil || n != 18 {
		t.Fatalf("resumed Append = %d, %v", n, err)
	}
	if b, _ := os.ReadFile(u2.dataPath(info.ID)); string(b) != "hello world, again" {
		t.Fatalf("upload holds %q", b)
	}
}
