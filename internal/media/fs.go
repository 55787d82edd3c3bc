package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FS keeps blobs as files under a root directory (the embedded default:
// --data-dir/media). A blob is written to a temporary file in root/.tmp,
// synced, then renamed into place, so a crash never leaves a partial blob
// under its key. Keys fan out into 1024 subdirectories by their last two
// characters (ULIDs end in random ones).
type FS struct {
	root string
	tmp  string
}

var _ Blobs = (*FS)(nil)

// NewFS returns blobs stored under root, creating it if needed, and removes
// temporary files a crash left behind.
func NewFS(root string) (*FS, error) {
	f := &FS{root: root, tmp: filepath.Join(root, ".tmp")}
	if err := mkdirDurable(root); err != nil {
		return nil, fmt.Errorf("media: creating %s: %w", root, err)
	}
	if err := os.MkdirAll(f.tmp, 0o700); err != nil {
		return nil, fmt.Errorf("media: creating %s: %w", f.tmp, err)
	}
	entries, err := os.ReadDir(f.tmp)
	if err != nil {
		return nil, fmt.Errorf("media: reading %s: %w", f.tmp, err)
	}
	for _, e := range entries {
		_ = os.Remove(filepath.Join(f.tmp, e.Name()))
	}
	return f, nil
}

// TempDir is where FS writes before renaming; processing may put its own
// temporary files there to stay on the same filesystem.
func (f *FS) TempDir() string { return f.tmp }

func (f *FS) path(key string) string {
	shard := strings.ToLower(key[max(0, len(key)-2):])
	return filepath.Join(f.root, shard, key)
}

// Put implements Blobs.
func (f *FS) Put(ctx context.Context, key string, r io.Reader, size int64, _ string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(f.tmp, "put-*")
	if err != nil {
		return unavailable("put "+key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// One byte more than declared tells a reader that gives too much.
	n, err := io.Copy(tmp, io.LimitReader(ctxReader{ctx, r}, size+1))
	if err != nil {
		return unavailable("put "+key, err)
	}
	if n != size {
		return sizeMismatch(key, size, n)
	}
	if err := tmp.Sync(); err != nil {
		return unavailable("put "+key, err)
	}
	if err := tmp.Close(); err != nil {
		return unavailable("put "+key, err)
	}
	dst := f.path(key)
	dir := filepath.Dir(dst)
	if err := mkdirDurable(dir); err != nil {
		return unavailable("put "+key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return unavailable("put "+key, err)
	}
	done = true
	return syncDir(dir)
}

// mkdirDurable creates dir if it is missing and syncs its parent, so that
// the new directory's entry survives a power loss (syncing dir itself
// later does not make its own name durable).
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir makes a rename into dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return unavailable("sync "+dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return unavailable("sync "+dir, err)
	}
	return nil
}

// Open implements Blobs.
func (f *FS) Open(_ context.Context, key string) (io.ReadSeekCloser, BlobInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, BlobInfo{}, err
	}
	file, err := os.Open(f.path(key))
	if err != nil {
		return nil, BlobInfo{}, fsErr("open "+key, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, BlobInfo{}, fsErr("open "+key, err)
	}
	return file, BlobInfo{Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Stat implements Blobs.
func (f *FS) Stat(_ context.Context, key string) (BlobInfo, error) {
	if err := checkKey(key); err != nil {
		return BlobInfo{}, err
	}
	st, err := os.Stat(f.path(key))
	if err != nil {
		return BlobInfo{}, fsErr("stat "+key, err)
	}
	return BlobInfo{Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete implements Blobs.
func (f *FS) Delete(_ context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.Remove(f.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return unavailable("delete "+key, err)
	}
	return nil
}

func fsErr(op string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrBlobNotFound
	}
	return unavailable(op, err)
}
