// Package media is Parley's media pipeline: blob storage behind the small
// Blobs interface (the local filesystem, S3-compatible object storage), the
// processing of an upload (the type decided from the bytes, image
// dimensions and EXIF orientation, metadata stripped, a small inline
// thumbnail, video posters and durations through ffmpeg when it is
// installed), the on-disk state of resumable (tus) uploads, and the
// collector that deletes what was never sent.
//
// It imports chat for the Media type and the sentinel errors only; the
// gateway drives it, and the server wires it.
package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Blobs stores the bytes of media items under keys. Every implementation
// passes the suite in internal/media/blobstest. Errors wrap chat's
// sentinels: ErrNotFound for a missing key, ErrInvalid for a malformed key
// or a size mismatch, ErrUnavailable when the backend cannot be reached.
type Blobs interface {
	// Put stores exactly size bytes read from r under key, atomically: a
	// reader sees the whole blob or none of it, never a part. It replaces
	// a blob already stored under key.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Open returns the blob for reading, seekable (for Range requests),
	// and its size and time. The caller closes it.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, BlobInfo, error)
	// Stat returns a blob's size and time.
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// Delete removes a blob; a missing one is not an error.
	Delete(ctx context.Context, key string) error
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Size    int64
	ModTime time.Time
}

// Errors of the Blobs implementations.
var (
	ErrBlobNotFound = fmt.Errorf("media: no such blob: %w", chat.ErrNotFound)
	ErrBadKey       = fmt.Errorf("media: a blob key is 1-200 characters of A-Z a-z 0-9 . _ - and does not start with a dot: %w", chat.ErrInvalid)
)

// checkKey refuses keys that are not plain names: no path separators, no
// dot-dot, nothing a filesystem or an object store would read differently.
func checkKey(key string) error {
	if key == "" || len(key) > 200 || key[0] == '.' {
		return ErrBadKey
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return ErrBadKey
		}
	}
	return nil
}

// sizeMismatch is the error of a Put whose reader did not give size bytes.
func sizeMismatch(key string, want, got int64) error {
	return fmt.Errorf("media: put %s: %w: declared %d bytes, read %d", key, chat.ErrInvalid, want, got)
}

// unavailable wraps a backend failure.
func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("media: %s: %w", op, err)
	}
	return fmt.Errorf("media: %s: %w: %w", op, chat.ErrUnavailable, err)
}

// ctxReader fails reads once ctx is done, so a copy stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
