package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/internal/media/mediatest"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// BenchmarkUpload measures upload throughput through a real server over
// loopback (MB/s): a 64 MiB file in one POST, and resumably (tus, 16 MiB
// PATCHes, through the SDK). Both include spooling, sniffing, the fsynced
// write to the data directory and the catalogue insert.
//
//	go test -run '^$' -bench Upload -benchtime 5x ./internal/e2e
func BenchmarkUpload(b *testing.B) {
	srv := servertest.Start(b)
	acc := newAccount(b, srv, "bench")
	file := randomBytes(64<<20, 42)
	b.Run("POST", func(b *testing.B) {
		b.SetBytes(int64(len(file)))
		for b.Loop() {
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/media", bytes.NewReader(file))
			req.Header.Set("Authorization", "Bearer "+acc.Token)
			if st, _ := doUpload(b, req); st != http.StatusCreated {
				b.Fatalf("status %d", st)
			}
		}
	})
	b.Run("tus", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "file.bin")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			b.Fatal(err)
		}
		c := client.New(client.Config{URLs: []string{srv.URL}, Token: acc.Token})
		b.SetBytes(int64(len(file)))
		for b.Loop() {
			if _, err := c.UploadFile(b.Context(), path, client.UploadOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("photo-12MP", func(b *testing.B) {
		photo := mediatest.PhoneJPEG(b, mediatest.PhotoLike(4000, 3000), 6)
		b.SetBytes(int64(len(photo)))
		for b.Loop() {
			req, _ := http.NewRequest("POST", srv.URL+"/api/v1/media", bytes.NewReader(photo))
			req.Header.Set("Authorization", "Bearer "+acc.Token)
			if st, m := doUpload(b, req); st != http.StatusCreated || m.Thumbnail == "" {
				b.Fatalf("status %d", st)
			}
		}
	})
}
