// Package powerfs is a FUSE filesystem for power-loss tests, in the spirit
// of Jepsen's LazyFS. It passes every operation through to a backing
// directory (what a process sees is the page cache: all it wrote), and
// keeps beside it the image a disk would hold if the power went now:
//
//   - a file's data becomes durable when the file is fsynced (fsync or
//     fdatasync): its size and the pages written since the last sync;
//   - a directory's entries (creations, renames, unlinks, mkdirs) become
//     durable when the directory is fsynced: the whole listing at once,
//     so a rename is atomic (old name or new, never neither).
//
// Crash rebuilds the backing directory from that image, throwing away all
// that was not made durable, and mounts it again. Options add torn writes
// (on a crash, a random subset of the unsynced pages did reach the disk) and
// a failing fsync (FailNextFsync: EIO, after which the file's unsynced pages
// are dropped as clean, as Linux does: a later fsync succeeds without them,
// the "fsyncgate" behaviour). Freeze stops the first write or fsync of a
// matching file in its tracks, so a test can cut the power at a chosen
// moment (mid-checkpoint, mid-upload).
//
// It needs root (it mounts directly, without fusermount) and /dev/fuse;
// Available tells whether both are there. It is for tests only: the image is
// kept in memory, and a file's identity is its backing inode number.
package powerfs

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// PageSize is the granularity of dirty tracking and of torn writes.
const PageSize = 4096

// ErrUnavailable is returned by New where FUSE cannot be mounted here.
var ErrUnavailable = errors.New("powerfs: FUSE is not available")

// Options tunes an FS. The zero value is strict: nothing unsynced survives.
type Options struct {
	// TornWrites makes Crash keep each unsynced dirty page of each file with
	// probability 1/2, as if the kernel had written some of them back before
	// the power went. Directory entries stay strict.
	TornWrites bool
	// Seed seeds the random choices of TornWrites (0: a random seed).
	Seed uint64
}

// FS is one mounted power-loss filesystem.
type FS struct {
	backing string // the live files (the page cache)
	mnt     string
	opts    Options
	rnd     *rand.Rand

	mu      sync.Mutex
	server  *fuse.Server
	conn    uint32 // the FUSE connection's number (the mount's minor device)
	rootIno uint64
	files   map[uint64]*fileImage // durable data by backing inode
	retired uint64                // the last key given to the image of an unlinked file (see created)
	dirs    map[uint64][]dirEntry // durable listing by backing inode
	failOn  string                // FailNextFsync pattern ("" none)
	failed  []string              // paths whose fsync failed
	frozen  chan struct{}         // closed by CutPower: releases frozen ops
	freeze  *freezeReq            // armed Freeze, or nil
	cut     bool                  // CutPower was called: nothing more becomes durable
	stats   Stats

	armed atomic.Bool // a Freeze or a FailNextFsync is armed (fast path for Write)
}

type fileImage struct {
	data     []byte         // content as of the last sync
	dirty    map[int64]bool // pages written since
	truncMin int64          // smallest size set by a truncate since the last sync, or -1
}

type dirEntry struct {
	name string
	ino  uint64
	dir  bool
}

type freezeReq struct {
	pattern string
	fsync   bool // freeze at an fsync, not a write
	skip    int  // matching operations to let through first
	hit     chan string
}

// Stats counts what the filesystem saw since New.
type Stats struct {
	Writes, FileSyncs, DirSyncs, FailedSyncs, Crashes int
}

// Available reports whether this process can mount a powerfs, and why not.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root (powerfs mounts without fusermount)", ErrUnavailable)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// New mounts a powerfs at mountpoint (an existing empty directory) over
// backing (an existing directory). What backing holds now is taken as
// durable. Close unmounts it.
func New(backing, mountpoint string, opts Options) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	f := &FS{backing: backing, mnt: mountpoint, opts: opts, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if err := f.snapshot(); err != nil {
		return nil, err
	}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// Dir is the mountpoint.
func (f *FS) Dir() string { return f.mnt }

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *FS) mount() error {
	root, err := fs.NewLoopbackRoot(f.backing)
	if err != nil {
		return fmt.Errorf("powerfs: %w", err)
	}
	lr := root.(*fs.LoopbackNode).RootData
	lr.NewNode = func(rd *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: rd}, pfs: f}
	}
	rootNode := &node{LoopbackNode: fs.LoopbackNode{RootData: lr}, pfs: f}
	lr.RootNode = rootNode
	zero := time.Duration(0)
	srv, err := fs.Mount(f.mnt, rootNode, &fs.Options{
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			DirectMount: true, DirectMountStrict: true, FsName: "powerfs", Name: "powerfs",
			MaxBackground: 64,
		},
	})
	if err != nil {
		return fmt.Errorf("powerfs: mounting %s: %w", f.mnt, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.mnt, &st); err != nil {
		_ = srv.Unmount()
		return fmt.Errorf("powerfs: %w", err)
	}
	f.mu.Lock()
	f.server, f.frozen, f.cut, f.conn = srv, make(chan struct{}), false, unix.Minor(st.Dev)
	f.mu.Unlock()
	return nil
}

// abort aborts the FUSE connection through fusectl (mounting fusectl if
// needed): every pending and later request on it fails with ENOTCONN.
func (f *FS) abort() {
	const ctl = "/sys/fs/fuse/connections"
	if des, err := os.ReadDir(ctl); err == nil && len(des) == 0 {
		_ = syscall.Mount("fusectl", ctl, "fusectl", 0, "")
	}
	_ = os.WriteFile(fmt.Sprintf("%s/%d/abort", ctl, f.conn), []byte("1"), 0o200)
}

// Close unmounts the filesystem; the backing directory keeps what the
// processes last saw (not the durable image: Crash first for that).
func (f *FS) Close() error {
	f.CutPower()
	return f.unmount()
}

func (f *FS) unmount() error {
	f.mu.Lock()
	srv := f.server
	f.server = nil
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	for range 20 { // a process that just died may still hold files for a moment
		if err := srv.Unmount(); err == nil {
			srv.Wait()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Files still open (a test's own leftover handle): abort the
	// connection, so those handles fail instead of waiting on a server
	// that is going away, and detach the mount.
	f.abort()
	if err := syscall.Unmount(f.mnt, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("powerfs: unmounting %s: %w", f.mnt, err)
	}
	return nil
}

// CutPower is the instant the power goes: from now on nothing becomes
// durable, every write and sync fails with EIO, and frozen operations are
// released (with EIO). Kill the processes using the filesystem, then call
// Crash. It is safe to call more than once.
func (f *FS) CutPower() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return
	}
	f.cut = true
	if f.frozen != nil {
		close(f.frozen)
	}
}

// Crash cuts the power (if CutPower was not called), unmounts, replaces the
// backing directory's content with the durable image and mounts it again:
// the filesystem as a machine finds it when it boots. Every process that had
// files open on it must be gone.
func (f *FS) Crash() error {
	f.CutPower()
	if err := f.unmount(); err != nil {
		return err
	}
	if err := f.rebuild(); err != nil {
		return err
	}
	f.mu.Lock()
	f.stats.Crashes++
	f.failOn, f.freeze = "", nil
	f.armed.Store(false)
	f.mu.Unlock()
	if err := f.snapshot(); err != nil {
		return err
	}
	return f.mount()
}

// FailNextFsync makes the next fsync of a file whose path (relative to the
// mountpoint) matches the filepath.Match pattern return EIO. The pages it
// should have written are then dropped: marked clean but never made
// durable, so a later fsync succeeds without them.
func (f *FS) FailNextFsync(pattern string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOn = pattern
	f.armed.Store(true)
}

// FailedFsyncs lists the paths whose fsync FailNextFsync failed.
func (f *FS) FailedFsyncs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.failed...)
}

// Freeze arms a trap: after skip matching operations, the next write (or,
// with atFsync, the next fsync) of a file whose path matches pattern blocks
// until CutPower, and its path is sent on the returned channel. Nothing of
// that operation becomes durable.
func (f *FS) Freeze(pattern string, atFsync bool, skip int) <-chan string {
	hit := make(chan string, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.freeze = &freezeReq{pattern: pattern, fsync: atFsync, skip: skip, hit: hit}
	f.armed.Store(true)
	return hit
}

// trap blocks a matching operation if a Freeze is armed for it; it returns
// EIO if the power was cut.
func (f *FS) trap(rel string, fsync bool) syscall.Errno {
	f.mu.Lock()
	if f.cut {
		f.mu.Unlock()
		return syscall.EIO
	}
	fr := f.freeze
	if fr == nil || fr.fsync != fsync || !match(fr.pattern, rel) {
		f.mu.Unlock()
		return 0
	}
	if fr.skip > 0 {
		fr.skip--
		f.mu.Unlock()
		return 0
	}
	f.freeze = nil
	f.armed.Store(f.failOn != "")
	frozen := f.frozen
	f.mu.Unlock()
	fr.hit <- rel
	<-frozen
	return syscall.EIO
}

func match(pattern, rel string) bool {
	ok, err := filepath.Match(pattern, rel)
	return err == nil && ok
}

// created is told of a new file. The backing filesystem may have given it
// the inode number of a file unlinked since its directory was last synced:
// that file's name is still on the durable image, with its own data. Its
// image moves to a key of its own (counting down from the top, where no
// backing inode lives), so the new file starts empty and the old name
// comes back after a crash with the old file's data.
func (f *FS) created(ino uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.files[ino]
	if !ok {
		return
	}
	if f.retired == 0 {
		f.retired = math.MaxUint64
	}
	f.retired--
	f.files[f.retired] = img
	delete(f.files, ino)
	for _, entries := range f.dirs {
		for i := range entries {
			if entries[i].ino == ino && !entries[i].dir {
				entries[i].ino = f.retired
			}
		}
	}
}

// image returns the durable image of inode ino; f.mu is held.
func (f *FS) image(ino uint64) *fileImage {
	img := f.files[ino]
	if img == nil {
		// A file created since the last snapshot: empty until synced.
		img = &fileImage{dirty: map[int64]bool{}, truncMin: -1}
		f.files[ino] = img
	}
	return img
}

func (f *FS) wrote(ino uint64, off int64, n int) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	img := f.image(ino)
	for p := off / PageSize; p <= (off+int64(n)-1)/PageSize; p++ {
		img.dirty[p] = true
	}
	f.stats.Writes++
}

func (f *FS) truncated(ino uint64, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := f.image(ino)
	if img.truncMin < 0 || size < img.truncMin {
		img.truncMin = size
	}
}

// syncFile makes a file's unsynced changes durable, reading them from fd.
func (f *FS) syncFile(ino uint64, rel string, fd int) syscall.Errno {
	if errno := f.trap(rel, true); errno != 0 {
		return errno
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	img := f.image(ino)
	if f.failOn != "" && match(f.failOn, rel) {
		f.failOn = ""
		f.armed.Store(f.freeze != nil)
		f.failed = append(f.failed, rel)
		f.stats.FailedSyncs++
		// Linux marks the pages clean after a failed writeback: they are
		// lost for the disk, and the next fsync will not report it.
		img.dirty, img.truncMin = map[int64]bool{}, -1
		return syscall.EIO
	}
	// The handle may be write-only: read the pages through a read-only
	// reopening of the same inode.
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return fs.ToErrno(err)
	}
	defer r.Close()
	fi, err := r.Stat()
	if err != nil {
		return fs.ToErrno(err)
	}
	if err := applyPages(img, int(r.Fd()), fi.Size(), func(int64) bool { return true }); err != nil {
		return fs.ToErrno(err)
	}
	f.stats.FileSyncs++
	return 0
}

// applyPages brings img to size, then copies the dirty pages that keep
// selects from fd, and forgets them.
func applyPages(img *fileImage, fd int, size int64, keep func(page int64) bool) error {
	if img.truncMin >= 0 && img.truncMin < int64(len(img.data)) {
		img.data = img.data[:img.truncMin]
	}
	if size < int64(len(img.data)) {
		img.data = img.data[:size]
	} else if size > int64(len(img.data)) {
		img.data = append(img.data, make([]byte, size-int64(len(img.data)))...)
	}
	for p := range img.dirty {
		start := p * PageSize
		if start >= size || !keep(p) {
			continue
		}
		end := min(start+PageSize, size)
		if _, err := syscall.Pread(fd, img.data[start:end], start); err != nil {
			return err
		}
	}
	img.dirty, img.truncMin = map[int64]bool{}, -1
	return nil
}

// syncDir makes a directory's current listing durable.
func (f *FS) syncDir(ino uint64, rel string) syscall.Errno {
	if errno := f.trap(rel, true); errno != 0 {
		return errno
	}
	entries, err := listDir(filepath.Join(f.backing, rel))
	if err != nil {
		return fs.ToErrno(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	f.dirs[ino] = entries
	f.stats.DirSyncs++
	return 0
}

func listDir(path string) ([]dirEntry, error) {
	des, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, 0, len(des))
	for _, de := range des {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(path, de.Name()), &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue // removed meanwhile
			}
			return nil, err
		}
		mode := st.Mode & syscall.S_IFMT
		if mode != syscall.S_IFREG && mode != syscall.S_IFDIR {
			continue // sockets, fifos, symlinks: not modelled
		}
		out = append(out, dirEntry{name: de.Name(), ino: st.Ino, dir: mode == syscall.S_IFDIR})
	}
	return out, nil
}

// snapshot takes the backing directory as it is now as the durable image.
func (f *FS) snapshot() error {
	files, dirs := map[uint64]*fileImage{}, map[uint64][]dirEntry{}
	var walk func(path string, ino uint64) error
	walk = func(path string, ino uint64) error {
		entries, err := listDir(path)
		if err != nil {
			return err
		}
		dirs[ino] = entries
		for _, e := range entries {
			p := filepath.Join(path, e.name)
			if e.dir {
				if err := walk(p, e.ino); err != nil {
					return err
				}
				continue
			}
			if files[e.ino] != nil {
				continue // another link
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[e.ino] = &fileImage{data: data, dirty: map[int64]bool{}, truncMin: -1}
		}
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.backing, &st); err != nil {
		return fmt.Errorf("powerfs: %w", err)
	}
	if err := walk(f.backing, st.Ino); err != nil {
		return fmt.Errorf("powerfs: snapshot of %s: %w", f.backing, err)
	}
	f.mu.Lock()
	f.files, f.dirs, f.rootIno = files, dirs, st.Ino
	f.mu.Unlock()
	return nil
}

// rebuild replaces the backing directory's content with the durable image.
func (f *FS) rebuild() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opts.TornWrites {
		if err := f.tear(); err != nil {
			return err
		}
	}
	fresh := f.backing + ".crash"
	if err := os.RemoveAll(fresh); err != nil {
		return err
	}
	if err := os.Mkdir(fresh, 0o755); err != nil {
		return err
	}
	made := map[uint64]string{} // inode -> first path written
	var build func(dir string, ino uint64, depth int) error
	build = func(dir string, ino uint64, depth int) error {
		if depth > 64 {
			return errors.New("powerfs: directory image too deep (a cycle?)")
		}
		for _, e := range f.dirs[ino] {
			p := filepath.Join(dir, e.name)
			if e.dir {
				if err := os.Mkdir(p, 0o755); err != nil {
					return err
				}
				if err := build(p, e.ino, depth+1); err != nil {
					return err
				}
				continue
			}
			if first, ok := made[e.ino]; ok {
				if err := os.Link(first, p); err != nil {
					return err
				}
				continue
			}
			var data []byte
			if img := f.files[e.ino]; img != nil {
				data = img.data
			}
			if err := os.WriteFile(p, data, 0o600); err != nil {
				return err
			}
			made[e.ino] = p
		}
		return nil
	}
	if err := build(fresh, f.rootIno, 0); err != nil {
		return fmt.Errorf("powerfs: rebuilding %s: %w", f.backing, err)
	}
	old := f.backing + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(f.backing, old); err != nil {
		return err
	}
	if err := os.Rename(fresh, f.backing); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// tear applies a random half of each file's unsynced pages to the image,
// reading them from the live files; f.mu is held.
func (f *FS) tear() error {
	paths := map[uint64]string{}
	err := filepath.WalkDir(f.backing, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		paths[st.Ino] = p
		return nil
	})
	if err != nil {
		return err
	}
	for ino, img := range f.files {
		p, ok := paths[ino]
		if !ok || len(img.dirty) == 0 {
			continue
		}
		file, err := os.Open(p)
		if err != nil {
			return err
		}
		fi, err := file.Stat()
		if err == nil {
			// The size is metadata: it reaches the disk with the pages
			// written past the old end, or not at all.
			size := int64(len(img.data))
			for pg := range img.dirty {
				if f.rnd.IntN(2) == 0 {
					delete(img.dirty, pg)
				} else if end := min((pg+1)*PageSize, fi.Size()); end > size {
					size = end
				}
			}
			img.truncMin = -1
			err = applyPages(img, int(file.Fd()), size, func(int64) bool { return true })
		}
		file.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
