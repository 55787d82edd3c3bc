package powerfs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node that tells its FS about writes, truncations and
// syncs. Everything else is the loopback's pass-through.
type node struct {
	fs.LoopbackNode
	pfs *FS
}

var (
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeWritever       = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.FileFsyncdirer     = (*dirHandle)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
	_ fs.FileReleasedirer   = (*dirHandle)(nil)
)

// ino is the backing inode number: the loopback numbers nodes by it (the
// backing directory is one filesystem), except the root, which FUSE calls 1.
func (n *node) ino() uint64 {
	if n.IsRoot() {
		return n.pfs.rootIno
	}
	return n.StableAttr().Ino
}

// rel is the node's path relative to the mountpoint.
func (n *node) rel() string {
	p := n.Path(nil)
	if p == "" {
		return "."
	}
	return p
}

// file is the loopback's file handle without FUSE passthrough: with it
// the kernel would send reads and writes straight to the backing file,
// around the dirty tracking.
type file struct{ *fs.LoopbackFile }

// PassthroughFd implements fs.FilePassthroughFder: never.
func (*file) PassthroughFd() (int, bool) { return 0, false }

func wrap(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &file{lf}
	}
	return fh
}

func fdOf(f fs.FileHandle) (int, bool) {
	pf, ok := f.(*file)
	if !ok {
		return 0, false
	}
	return pf.LoopbackFile.PassthroughFd()
}

// Open implements fs.NodeOpener.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	return wrap(fh), fl, errno
}

// Create implements fs.NodeCreater.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno == 0 {
		n.pfs.created(in.StableAttr().Ino)
	}
	return in, wrap(fh), fl, errno
}

// Write implements fs.NodeWriter.
func (n *node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.pfs.armed.Load() || n.pfs.isCut() {
		if errno := n.pfs.trap(n.rel(), false); errno != 0 {
			return 0, errno
		}
	}
	w, ok := f.(fs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	written, errno := w.Write(ctx, data, off)
	n.pfs.wrote(n.ino(), off, int(written))
	return written, errno
}

// Writev implements fs.NodeWritever.
func (n *node) Writev(ctx context.Context, f fs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	return n.Write(ctx, f, all, off)
}

// Fsync implements fs.NodeFsyncer for files (and directories synced
// without a handle).
func (n *node) Fsync(_ context.Context, f fs.FileHandle, _ uint32) syscall.Errno {
	if n.IsDir() {
		return n.pfs.syncDir(n.ino(), n.rel())
	}
	fd, ok := fdOf(f)
	if !ok {
		return syscall.EBADF
	}
	return n.pfs.syncFile(n.ino(), n.rel(), fd)
}

// Setattr implements fs.NodeSetattrer: a truncation is an unsynced change.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		if n.pfs.isCut() {
			return syscall.EIO
		}
		n.pfs.truncated(n.ino(), int64(sz))
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// Allocate implements fs.NodeAllocater (fallocate): the range counts as
// written.
func (n *node) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	a, ok := f.(fs.FileAllocater)
	if !ok {
		return syscall.ENOTSUP
	}
	errno := a.Allocate(ctx, off, size, mode)
	if errno == 0 {
		n.pfs.wrote(n.ino(), int64(off), int(size))
	}
	return errno
}

// CopyFileRange implements fs.NodeCopyFileRanger: unsupported, so the
// kernel falls back to reads and writes that are tracked.
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

// OpendirHandle implements fs.NodeOpendirHandler with a handle whose
// fsync makes the listing durable.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{inner: fh, n: n}, fl, 0
}

// dirHandle wraps the loopback's directory stream.
type dirHandle struct {
	inner fs.FileHandle
	n     *node
}

func (d *dirHandle) Fsyncdir(context.Context, uint32) syscall.Errno {
	return d.n.pfs.syncDir(d.n.ino(), d.n.rel())
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if r, ok := d.inner.(fs.FileReaddirenter); ok {
		return r.Readdirent(ctx)
	}
	return nil, syscall.ENOTSUP
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.inner.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (f *FS) isCut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}
