package main

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/internal/server/servertest"
)

func TestSendFileAndDownload(t *testing.T) {
	srv := servertest.Start(t)
	alice := newCLIUser(t, srv.URL, "alice")
	bob := newCLIUser(t, srv.URL, "bob")
	alice.ok("alice-password\n", "register", "--password-stdin", "--login", "alice")
	bob.ok("bob-password\n", "register", "--password-stdin", "--login", "bob")

	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	photo := filepath.Join(t.TempDir(), "cat.png")
	if err := os.WriteFile(photo, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := alice.run(context.Background(), "", "send", "--file", photo, "@bob", "look", "at", "this")
	if code != 0 || !strings.Contains(out, "sent to") {
		t.Fatalf("send --file: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "100%") || !strings.Contains(errs, "cat.png") {
		t.Fatalf("no progress bar on stderr: %q", errs)
	}
	// Bob sees an image message with the media id and its file name (from
	// the message's media object), and downloads it.
	hist := bob.ok("", "history", "@alice")
	m := regexp.MustCompile(`\[image (\w+) cat\.png\] look at this`).FindStringSubmatch(hist)
	if m == nil {
		t.Fatalf("history: %s", hist)
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "got.png")
	out = bob.ok("", "download", m[1], "-o", dest)
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, b.Bytes()) || !strings.Contains(out, "image/png") {
		t.Fatalf("download: %v, %s", err, out)
	}
	// Without -o: the sender's file name; never over an existing file.
	t.Chdir(dir)
	bob.ok("", "download", m[1])
	if _, err := os.Stat(filepath.Join(dir, "cat.png")); err != nil {
		t.Fatalf("default name: %v", err)
	}
	if code, _, errs := bob.run(context.Background(), "", "download", m[1]); code == 0 || !strings.Contains(errs, "exists") {
		t.Fatalf("download over an existing file: exit %d %s", code, errs)
	}
	// A file without a caption is fine; an unknown media id is an error.
	alice.ok("", "send", "--file", photo, "@bob")
	if code, _, errs := bob.run(context.Background(), "", "download", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "-o", filepath.Join(dir, "x")); code != 1 || !strings.Contains(errs, "404") {
		t.Fatalf("download of an unknown id: exit %d %s", code, errs)
	}
}

// TestSendFileResumesAnInterruptedUpload: the state file of an interrupted
// upload makes the next `send --file` resume it.
func TestSendFileResumesAnInterruptedUpload(t *testing.T) {
	srv := servertest.Start(t)
	alice := newCLIUser(t, srv.URL, "alice")
	bob := newCLIUser(t, srv.URL, "bob")
	alice.ok("alice-password\n", "register", "--password-stdin", "--login", "alice")
	bob.ok("bob-password\n", "register", "--password-stdin", "--login", "bob")
	path := filepath.Join(t.TempDir(), "big.bin")
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	// Start the upload as the CLI would, and stop after the first chunk.
	a := &app{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{},
		getenv: func(k string) string {
			return map[string]string{"PARLEY_CONFIG": alice.config, "PARLEY_SERVER": srv.URL}[k]
		}}
	c, err := a.session(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := a.uploadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := uploadState{}
	_, err = c.UploadFile(ctx, path, client.UploadOptions{
		ChunkSize: 256 << 10,
		OnStart:   func(u string) { st[key] = u; a.saveUploadState(st) },
		Progress: func(sent, _ int64) {
			if sent > 256<<10 { // the first chunk was acknowledged
				cancel()
			}
		},
	})
	if err == nil {
		t.Fatal("the interrupted upload finished")
	}
	code, out, errs := alice.run(context.Background(), "", "send", "--file", path, "@bob")
	if code != 0 || !strings.Contains(errs, "resuming the upload") {
		t.Fatalf("send --file after an interruption: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(alice.config + ".uploads"); !os.IsNotExist(err) {
		t.Fatalf("the upload state was not cleared: %v", err)
	}
}
