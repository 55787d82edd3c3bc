// Package blobstest is the conformance suite of media.Blobs. Every
// implementation (the local filesystem, S3) runs it from its own tests:
//
//	func TestBlobs(t *testing.T) {
//		blobstest.Run(t, func(t *testing.T) media.Blobs { return newBlobs(t) })
//	}
package blobstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/media"
)

// Run runs the suite. open is called once per subtest and must return
// blobs independent of the other subtests' (a fresh directory or bucket
// prefix).
func Run(t *testing.T, open func(t *testing.T) media.Blobs) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, t.Context(), open(t))
		})
	}
}

// data returns n pseudo-random bytes, the same for the same seed.
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, ctx context.Context, b media.Blobs, key string, content []byte) {
	t.Helper()
	if err := b.Put(ctx, key, bytes.NewReader(content), int64(len(content)), "application/octet-stream"); err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", key, len(content), err)
	}
}

func readAll(t *testing.T, ctx context.Context, b media.Blobs, key string) []byte {
	t.Helper()
	r, info, err := b.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	if info.Size != int64(len(got)) {
		t.Fatalf("Open(%s) says %d bytes, read %d", key, info.Size, len(got))
	}
	return got
}

func wantNotFound(t *testing.T, ctx context.Context, b media.Blobs, key string) {
	t.Helper()
	if r, _, err := b.Open(ctx, key); !errors.Is(err, chat.ErrNotFound) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("Open(%s) = %v, want ErrNotFound", key, err)
	}
	if _, err := b.Stat(ctx, key); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("Stat(%s) = %v, want ErrNotFound", key, err)
	}
}

// failingReader gives n bytes, then an error.
type failingReader struct {
	r io.Reader
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("the network went away")
	}
	return n, err
}

var tests = []struct {
	name string
	run  func(t *testing.T, ctx context.Context, b media.Blobs)
}{
	{"PutOpenStatRoundTrip", func(t *testing.T, ctx context.Context, b media.Blobs) {
		content := data(1, 100_000)
		put(t, ctx, b, "01ROUNDTRIP", content)
		if got := readAll(t, ctx, b, "01ROUNDTRIP"); !bytes.Equal(got, content) {
			t.Fatalf("read back %d bytes that differ from the %d put", len(got), len(content))
		}
		info, err := b.Stat(ctx, "01ROUNDTRIP")
		if err != nil || info.Size != int64(len(content)) || info.ModTime.IsZero() {
			t.Fatalf("Stat = %+v, %v", info, err)
		}
	}},
	{"EmptyBlob", func(t *testing.T, ctx context.Context, b media.Blobs) {
		put(t, ctx, b, "empty", nil)
		if got := readAll(t, ctx, b, "empty"); len(got) != 0 {
			t.Fatalf("empty blob read back as %d bytes", len(got))
		}
	}},
	{"SeekForRanges", func(t *testing.T, ctx context.Context, b media.Blobs) {
		content := data(2, 50_000)
		put(t, ctx, b, "ranges", content)
		r, _, err := b.Open(ctx, "ranges")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		// What http.ServeContent does: the size from the end, then ranges.
		end, err := r.Seek(0, io.SeekEnd)
		if err != nil || end != int64(len(content)) {
			t.Fatalf("Seek(0, End) = %d, %v; want %d", end, err, len(content))
		}
		for _, rg := range [][2]int{{0, 10}, {49_990, 10}, {12_345, 20_000}, {100, 1}} {
			if _, err := r.Seek(int64(rg[0]), io.SeekStart); err != nil {
				t.Fatalf("Seek(%d): %v", rg[0], err)
			}
			got := make([]byte, rg[1])
			if _, err := io.ReadFull(r, got); err != nil {
				t.Fatalf("reading %v: %v", rg, err)
			}
			if !bytes.Equal(got, content[rg[0]:rg[0]+rg[1]]) {
				t.Fatalf("range %v differs", rg)
			}
		}
	}},
	{"MissingIsNotFound", func(t *testing.T, ctx context.Context, b media.Blobs) {
		wantNotFound(t, ctx, b, "never-put")
	}},
	{"DeleteThenNotFoundAndDeleteIsIdempotent", func(t *testing.T, ctx context.Context, b media.Blobs) {
		put(t, ctx, b, "doomed", []byte("bye"))
		if err := b.Delete(ctx, "doomed"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		wantNotFound(t, ctx, b, "doomed")
		if err := b.Delete(ctx, "doomed"); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		if err := b.Delete(ctx, "never-put"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	}},
	{"PutReplaces", func(t *testing.T, ctx context.Context, b media.Blobs) {
		put(t, ctx, b, "twice", []byte("first version, longer"))
		put(t, ctx, b, "twice", []byte("second"))
		if got := readAll(t, ctx, b, "twice"); string(got) != "second" {
			t.Fatalf("after the second Put: %q", got)
		}
	}},
	{"ShortReaderStoresNothing", func(t *testing.T, ctx context.Context, b media.Blobs) {
		err := b.Put(ctx, "short", io.LimitReader(bytes.NewReader(data(3, 1000)), 500), 1000, "")
		if !errors.Is(err, chat.ErrInvalid) {
			t.Fatalf("Put of 500 bytes declared as 1000 = %v, want ErrInvalid", err)
		}
		wantNotFound(t, ctx, b, "short")
	}},
	{"FailingReaderStoresNothing", func(t *testing.T, ctx context.Context, b media.Blobs) {
		err := b.Put(ctx, "broken", &failingReader{r: bytes.NewReader(data(4, 3000))}, 5000, "")
		if err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		wantNotFound(t, ctx, b, "broken")
	}},
	{"CancelledContextStoresNothing", func(t *testing.T, ctx context.Context, b media.Blobs) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		content := data(5, 1000)
		if err := b.Put(cctx, "cancelled", bytes.NewReader(content), int64(len(content)), ""); err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
		wantNotFound(t, ctx, b, "cancelled")
	}},
	{"BadKeysAreRefused", func(t *testing.T, ctx context.Context, b media.Blobs) {
		for _, key := range []string{"", "../escape", "a/b", ".hidden", "sp ace", strings.Repeat("k", 201), "nul\x00"} {
			err := b.Put(ctx, key, strings.NewReader("x"), 1, "")
			if !errors.Is(err, chat.ErrInvalid) {
				t.Errorf("Put(%q) = %v, want ErrInvalid", key, err)
			}
			if _, _, err := b.Open(ctx, key); !errors.Is(err, chat.ErrInvalid) {
				t.Errorf("Open(%q) = %v, want ErrInvalid", key, err)
			}
		}
	}},
	{"LargeBlobInParts", func(t *testing.T, ctx context.Context, b media.Blobs) {
		// Over S3 adapters' part size (16 MiB): a multipart upload.
		content := data(6, 17<<20+123)
		put(t, ctx, b, "large", content)
		if got := readAll(t, ctx, b, "large"); !bytes.Equal(got, content) {
			t.Fatalf("large blob differs after the round trip (%d bytes read)", len(got))
		}
	}},
	{"ConcurrentPutsOfDifferentKeys", func(t *testing.T, ctx context.Context, b media.Blobs) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				content := data(uint64(100+i), 10_000+i)
				key := fmt.Sprintf("concurrent-%d", i)
				if err := b.Put(ctx, key, bytes.NewReader(content), int64(len(content)), ""); err != nil {
					t.Errorf("Put(%s): %v", key, err)
				}
			}()
		}
		wg.Wait()
		for i := range 8 {
			if got := readAll(t, ctx, b, fmt.Sprintf("concurrent-%d", i)); !bytes.Equal(got, data(uint64(100+i), 10_000+i)) {
				t.Errorf("concurrent-%d differs", i)
			}
		}
	}},
}
