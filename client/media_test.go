package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/internal/server/servertest"
)

func randomFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	path := filepath.Join(t.TempDir(), "report final.bin")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// flakyTransport breaks the body of the first PATCH after cut bytes, as a
// dropped connection would, and counts the bytes sent in PATCH bodies.
type flakyTransport struct {
	cut    int64
	broken atomic.Bool
	sent   atomic.Int64
}

type breakingBody struct {
	r    io.ReadCloser
	left int64
	t    *flakyTransport
}

func (b *breakingBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("network cable pulled")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	b.t.sent.Add(int64(n))
	return n, err
}

func (b *breakingBody) Close() error { return b.r.Close() }

type countingBody struct {
	r io.ReadCloser
	t *flakyTransport
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.t.sent.Add(int64(n))
	return n, err
}

func (c *countingBody) Close() error { return c.r.Close() }

func (f *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPatch && req.Body != nil {
		if !f.broken.Swap(true) {
			req.Body = &breakingBody{r: req.Body, left: f.cut, t: f}
		} else {
			req.Body = &countingBody{r: req.Body, t: f}
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestUploadFileResumesAfterADroppedConnection(t *testing.T) {
	srv := servertest.Start(t)
	acc := newAccount(t, srv, "uploader")
	path, content := randomFile(t, 5<<20)
	ft := &flakyTransport{cut: 3 << 20}
	c := client.New(client.Config{URLs: []string{srv.URL}, Token: acc.sess.Token, HTTPClient: &http.Client{Transport: ft}})
	var reports atomic.Int64
	m, err := c.UploadFile(t.Context(), path, client.UploadOptions{
		ChunkSize: 8 << 20,
		Progress:  func(sent, total int64) { reports.Add(1) },
	})
	if err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	if m.MediaID == "" || m.Size != int64(len(content)) || m.Name != "report final.bin" || m.Kind != "file" {
		t.Fatalf("media %+v", m)
	}
	// It resumed: what the server had kept was not sent again.
	if sent := ft.sent.Load(); sent > int64(len(content))+(1<<20) {
		t.Fatalf("sent %d bytes for a %d-byte file: the upload started over", sent, len(content))
	}
	if reports.Load() == 0 {
		t.Fatal("no progress reported")
	}
	var got bytes.Buffer
	d, err := c.Download(t.Context(), m.MediaID, &got, nil)
	if err != nil || !bytes.Equal(got.Bytes(), content) || d.Name != "report final.bin" || d.ContentType != "application/octet-stream" {
		t.Fatalf("Download: %+v, %v, equal %v", d, err, bytes.Equal(got.Bytes(), content))
	}
}

func TestUploadFileResumesInALaterProcess(t *testing.T) {
	srv := servertest.Start(t)
	acc := newAccount(t, srv, "resumer")
	path, content := randomFile(t, 3<<20)
	c := client.New(client.Config{URLs: []string{srv.URL}, Token: acc.sess.Token})
	// The first process dies after the first chunk.
	var resumeURL string
	ctx, cancel := context.WithCancel(t.Context())
	_, err := c.UploadFile(ctx, path, client.UploadOptions{
		ChunkSize: 1 << 20,
		OnStart:   func(u string) { resumeURL = u },
		Progress: func(sent, _ int64) {
			// Past the first chunk: the server acknowledged it.
			if sent > 1<<20 {
				cancel()
			}
		},
	})
	if err == nil || resumeURL == "" || !strings.Contains(resumeURL, "/api/v1/uploads/") {
		t.Fatalf("interrupted upload: %v, resume URL %q", err, resumeURL)
	}
	// The next one continues from the server's offset.
	var first atomic.Int64
	first.Store(-1)
	m, err := c.UploadFile(t.Context(), path, client.UploadOptions{
		ResumeURL: resumeURL,
		Progress:  func(sent, _ int64) { first.CompareAndSwap(-1, sent) },
	})
	if err != nil {
		t.Fatalf("resumed UploadFile: %v", err)
	}
	if first.Load() <= 0 {
		t.Fatalf("the resumed upload started at %d, not where the first one stopped", first.Load())
	}
	var got bytes.Buffer
	if _, err := c.Download(t.Context(), m.MediaID, &got, nil); err != nil || !bytes.Equal(got.Bytes(), content) {
		t.Fatalf("Download after resume: %v", err)
	}
	// Another user cannot download it: 403.
	other := newAccount(t, srv, "stranger")
	oc := client.New(client.Config{URLs: []string{srv.URL}, Token: other.sess.Token})
	_, err = oc.Download(t.Context(), m.MediaID, io.Discard, nil)
	if !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("stranger's Download: %v, want ErrForbidden", err)
	}
}

func TestUploadMediaAndInfo(t *testing.T) {
	srv := servertest.Start(t)
	acc := newAccount(t, srv, "direct")
	c := client.New(client.Config{URLs: []string{srv.URL}, Token: acc.sess.Token})
	m, err := c.UploadMedia(t.Context(), strings.NewReader("plain notes\n"), "notes.txt")
	if err != nil || m.ContentType != "text/plain; charset=utf-8" || m.Name != "notes.txt" {
		t.Fatalf("UploadMedia: %+v, %v", m, err)
	}
	info, err := c.MediaInfo(t.Context(), m.MediaID)
	if err != nil || info.MediaID != m.MediaID || info.Size != m.Size {
		t.Fatalf("MediaInfo: %+v, %v", info, err)
	}
}
