package powerfs_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/parley-chat/parley/internal/powerfs"
)

func write(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func crash(t *testing.T, p *powerfs.FS) {
	t.Helper()
	if err := p.Crash(); err != nil {
		t.Fatal(err)
	}
}

func content(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// A file's data survives a crash only if the file was fsynced, and its name
// only if its directory was.
func TestSyncSemantics(t *testing.T) {
	p := powerfs.MountForTest(t, powerfs.Options{})
	dir := p.Dir()
	write(t, filepath.Join(dir, "synced"), []byte("durable"), true)
	write(t, filepath.Join(dir, "unsynced"), []byte("lost data"), false)
	syncDir(t, dir)
	write(t, filepath.Join(dir, "no-dir-sync"), []byte("synced data, unsynced name"), true)
	crash(t, p)

	if got, ok := content(t, filepath.Join(dir, "synced")); !ok || got != "durable" {
		t.Errorf("synced file after crash: %q (exists %v), want %q", got, ok, "durable")
	}
	if got, ok := content(t, filepath.Join(dir, "unsynced")); !ok || got != "" {
		t.Errorf("unsynced file (its name synced) after crash: %q (exists %v), want it empty", got, ok)
	}
	if _, ok := content(t, filepath.Join(dir, "no-dir-sync")); ok {
		t.Error("a file whose directory was never synced survived the crash")
	}

	// Overwrite in place without a sync: the old content comes back.
	f, err := os.OpenFile(filepath.Join(dir, "synced"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("CHANGED"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := content(t, filepath.Join(dir, "synced")); got != "CHANGED" {
		t.Fatalf("before the crash the process sees %q, want its write", got)
	}
	crash(t, p)
	if got, _ := content(t, filepath.Join(dir, "synced")); got != "durable" {
		t.Errorf("unsynced overwrite: after crash %q, want the synced %q", got, "durable")
	}

	// An unlink without a directory sync is undone; with one it holds.
	if err := os.Remove(filepath.Join(dir, "synced")); err != nil {
		t.Fatal(err)
	}
	crash(t, p)
	if _, ok := content(t, filepath.Join(dir, "synced")); !ok {
		t.Error("an unlink whose directory was not synced survived the crash")
	}
	if err := os.Remove(filepath.Join(dir, "synced")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, dir)
	crash(t, p)
	if _, ok := content(t, filepath.Join(dir, "synced")); ok {
		t.Error("a synced unlink was undone by the crash")
	}

	// A new subdirectory needs its parent synced as well as itself.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "f"), []byte("x"), true)
	syncDir(t, sub)
	crash(t, p)
	if _, err := os.Stat(sub); err == nil {
		t.Error("a directory whose parent was not synced survived the crash")
	}
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "f"), []byte("x"), true)
	syncDir(t, sub)
	syncDir(t, dir)
	crash(t, p)
	if got, _ := content(t, filepath.Join(sub, "f")); got != "x" {
		t.Errorf("sub/f after a fully synced creation: %q, want %q", got, "x")
	}
}

// The write-temp, fsync, rename, fsync-directory idiom: before the
// directory sync a crash shows the old file, after it the new, never
// neither and never a mix.
func TestRenameIsAtomic(t *testing.T) {
	p := powerfs.MountForTest(t, powerfs.Options{})
	dir := p.Dir()
	dst := filepath.Join(dir, "state")
	write(t, dst, []byte("old"), true)
	syncDir(t, dir)

	tmp := filepath.Join(dir, "state.tmp")
	write(t, tmp, []byte("new"), true)
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
	crash(t, p)
	if got, ok := content(t, dst); !ok || got != "old" {
		t.Errorf("rename without a directory sync: after crash %q (exists %v), want the old content", got, ok)
	}

	write(t, tmp, []byte("new"), true)
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
	syncDir(t, dir)
	crash(t, p)
	if got, ok := content(t, dst); !ok || got != "new" {
		t.Errorf("rename with a directory sync: after crash %q (exists %v), want the new content", got, ok)
	}
	if _, ok := content(t, tmp); ok {
		t.Error("the temporary name survived a synced rename")
	}

	// Renamed without syncing the new file's data first: the name is
	// durable but the data is not, which is why the idiom syncs the file.
	write(t, tmp, []byte("unsynced"), false)
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
	syncDir(t, dir)
	crash(t, p)
	if got, _ := content(t, dst); got != "" {
		t.Errorf("rename of an unsynced file: after crash %q, want it empty", got)
	}
}

// With TornWrites a crash keeps some unsynced pages and not others, each
// whole.
func TestTornWrites(t *testing.T) {
	p := powerfs.MountForTest(t, powerfs.Options{TornWrites: true, Seed: 7})
	path := filepath.Join(p.Dir(), "torn")
	const pages = 64
	write(t, path, bytes.Repeat([]byte{'o'}, pages*powerfs.PageSize), true)
	syncDir(t, p.Dir())
	write(t, path, bytes.Repeat([]byte{'n'}, pages*powerfs.PageSize), false)
	crash(t, p)
	got, _ := content(t, path)
	if len(got) != pages*powerfs.PageSize {
		t.Fatalf("after a torn crash the file has %d bytes, want %d", len(got), pages*powerfs.PageSize)
	}
	var olds, news int
	for i := 0; i < pages; i++ {
		page := got[i*powerfs.PageSize : (i+1)*powerfs.PageSize]
		switch page {
		case string(bytes.Repeat([]byte{'o'}, powerfs.PageSize)):
			olds++
		case string(bytes.Repeat([]byte{'n'}, powerfs.PageSize)):
			news++
		default:
			t.Fatalf("page %d is a mix of old and new: torn below page granularity", i)
		}
	}
	if olds == 0 || news == 0 {
		t.Errorf("torn crash kept %d new and %d old pages of %d: want some of each", news, olds, pages)
	}
}

// FailNextFsync: EIO once, and the pages it should have written are gone
// for good: the next fsync succeeds without them (Linux's behaviour, the
// reason a failed fsync must never be retried and trusted).
func TestFailedFsyncDropsPages(t *testing.T) {
	p := powerfs.MountForTest(t, powerfs.Options{})
	path := filepath.Join(p.Dir(), "data")
	write(t, path, []byte("AAAA"), true)
	syncDir(t, p.Dir())

	p.FailNextFsync("data")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("BBBB"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync with a failure armed: %v, want EIO", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("the retried fsync: %v, want success (the kernel reports a writeback error once)", err)
	}
	f.Close()
	if got := p.FailedFsyncs(); len(got) != 1 || got[0] != "data" {
		t.Errorf("FailedFsyncs = %v, want [data]", got)
	}
	crash(t, p)
	if got, _ := content(t, path); got != "AAAA" {
		t.Errorf("after a failed fsync, a successful retry and a crash: %q, want the old %q", got, "AAAA")
	}
}

// A file unlinked since its directory was last synced keeps its name and
// data after a crash even when the backing filesystem hands its inode
// number to a new file, which must start empty (the images were once keyed
// by inode number alone, and the old name came back with the new file's
// bytes).
func TestReusedInodeKeepsTheOldFile(t *testing.T) {
	p := powerfs.MountForTest(t, powerfs.Options{})
	dir := p.Dir()
	ino := func(path string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	for i := range 50 {
		old, fresh := filepath.Join(dir, "old"), filepath.Join(dir, "new")
		write(t, old, []byte("the old file"), true)
		syncDir(t, dir)
		oldIno := ino(old)
		if err := os.Remove(old); err != nil {
			t.Fatal(err)
		}
		write(t, fresh, bytes.Repeat([]byte("new "), 3000), true)
		if ino(fresh) != oldIno {
			// Not reused this time: make both durable and try again.
			if err := os.Remove(fresh); err != nil {
				t.Fatal(err)
			}
			syncDir(t, dir)
			continue
		}
		crash(t, p)
		if got, ok := content(t, old); !ok || got != "the old file" {
			t.Fatalf("attempt %d: after the crash the unlinked file reads %d bytes starting %.12q (present %v), want its own data", i, len(got), got, ok)
		}
		if _, ok := content(t, fresh); ok {
			t.Fatalf("attempt %d: the new file survived, but its directory was never synced", i)
		}
		return
	}
	t.Skip("the backing filesystem never reused an inode number in 50 tries")
}
