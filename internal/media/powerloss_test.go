package media_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/media"
	"github.com/parley-chat/parley/internal/powerfs"
)

// A blob Put returned for, and an upload append acknowledged, survive a
// power loss (powerfs: what was not fsynced is gone), including the first
// blob of a new shard directory and a fresh upload directory.
func TestPowerLossBlobsAndUploads(t *testing.T) {
	pfs := powerfs.MountForTest(t, powerfs.Options{TornWrites: true})
	ctx := context.Background()
	root := filepath.Join(pfs.Dir(), "media")
	blobs, err := media.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i, key := range []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FBW", "01ARZ3NDEKTSV4RRFFQ69G5FAV.thumb"} {
		data := bytes.Repeat([]byte{byte('a' + i)}, 10000+i*5000)
		if err := blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
		want[key] = data
	}
	ups, err := media.OpenUploads(filepath.Join(pfs.Dir(), "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ups.Create("owner", 9000, nil, "01ARZ3NDEKTSV4RRFFQ69G5FCX", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	off, err := ups.Append(info.ID, 0, strings.NewReader(strings.Repeat("x", 6000)))
	if err != nil || off != 6000 {
		t.Fatalf("Append: %d, %v", off, err)
	}
	gone, err := ups.Create("owner", 10, nil, "01ARZ3NDEKTSV4RRFFQ69G5FDY", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ups.Remove(gone.ID); err != nil {
		t.Fatal(err)
	}

	if err := pfs.Crash(); err != nil {
		t.Fatal(err)
	}
	if blobs, err = media.NewFS(root); err != nil {
		t.Fatal(err)
	}
	for key, data := range want {
		r, _, err := blobs.Open(ctx, key)
		if err != nil {
			t.Errorf("blob %s after the power loss: %v", key, err)
			continue
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(got, data) {
			t.Errorf("blob %s after the power loss: %d bytes, not the %d put", key, len(got), len(data))
		}
	}
	if ups, err = media.OpenUploads(filepath.Join(pfs.Dir(), "uploads")); err != nil {
		t.Fatal(err)
	}
	got, err := ups.Get(info.ID)
	if err != nil || got.Offset != 6000 {
		t.Errorf("upload after the power loss: offset %d, %v; want the acknowledged 6000", got.Offset, err)
	}
	if _, err := ups.Get(gone.ID); err == nil {
		t.Error("a removed upload came back after the power loss")
	}
}

// A failed fsync of an append must not leave the bytes it covered counted
// in the offset: Linux may have dropped them, and the next fsync would not
// say so.
func TestUploadAppendFailedFsync(t *testing.T) {
	pfs := powerfs.MountForTest(t, powerfs.Options{})
	ups, err := media.OpenUploads(filepath.Join(pfs.Dir(), "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ups.Create("owner", 9000, nil, "01ARZ3NDEKTSV4RRFFQ69G5FCX", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ups.Append(info.ID, 0, strings.NewReader(strings.Repeat("a", 3000))); err != nil {
		t.Fatal(err)
	}
	pfs.FailNextFsync("uploads/*.bin")
	off, err := ups.Append(info.ID, 3000, strings.NewReader(strings.Repeat("b", 3000)))
	if err == nil {
		t.Fatal("Append whose fsync failed returned no error")
	}
	if off != 3000 {
		t.Errorf("Append whose fsync failed returned offset %d, want 3000", off)
	}
	got, err := ups.Get(info.ID)
	if err != nil || got.Offset != 3000 {
		t.Fatalf("offset after the failed fsync: %d, %v; want 3000 (the bytes it covered are not durable)", got.Offset, err)
	}
	if off, err := ups.Append(info.ID, 3000, strings.NewReader(strings.Repeat("c", 3000))); err != nil || off != 6000 {
		t.Fatalf("resumed Append: %d, %v", off, err)
	}
	if err := pfs.Crash(); err != nil {
		t.Fatal(err)
	}
	r, err := ups.Data(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	r.Close()
	if string(data) != strings.Repeat("a", 3000)+strings.Repeat("c", 3000) {
		t.Errorf("after the power loss the upload holds %d bytes that are not the acknowledged a…c", len(data))
	}
}
