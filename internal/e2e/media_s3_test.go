package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/parley-chat/parley/internal/media/mediatest"
	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// TestMediaOnS3 runs a node with its media in S3: the in-process fake
// always, and the real server PARLEY_TEST_S3 names when it is set
// (scripts/s3-test-server.sh).
func TestMediaOnS3(t *testing.T) {
	fake := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(fake.Close)
	backends := map[string]func(*server.Config){
		"fake": func(c *server.Config) {
			c.S3Endpoint, c.S3Bucket, c.S3AccessKey, c.S3SecretKey, c.S3Region = fake.URL, "parley-media", "k", "s", "us-east-1"
		},
	}
	if raw := os.Getenv("PARLEY_TEST_S3"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			t.Fatalf("PARLEY_TEST_S3=%q: want http://KEY:SECRET@HOST:PORT/BUCKET", raw)
		}
		secret, _ := u.User.Password()
		backends["real"] = func(c *server.Config) {
			c.S3Endpoint, c.S3Bucket = u.Scheme+"://"+u.Host, strings.Trim(u.Path, "/")
			c.S3AccessKey, c.S3SecretKey, c.S3Region = u.User.Username(), secret, u.Query().Get("region")
		}
	} else {
		t.Log("PARLEY_TEST_S3 is not set: only the in-process fake S3 runs (see scripts/s3-test-server.sh)")
	}
	for name, opt := range backends {
		t.Run(name, func(t *testing.T) {
			srv := servertest.Start(t, opt)
			alice := newAccount(t, srv, "s3")
			photo := mediatest.PhoneJPEG(t, mediatest.PhotoLike(640, 480), 6)
			m := upload(t, srv, alice.Token, photo)
			if m.ContentType != "image/jpeg" || m.Width != 480 || m.Thumbnail == "" {
				t.Fatalf("upload %+v", m)
			}
			resp, whole := fetch(t, srv, alice.Token, m.MediaID, nil)
			if resp.StatusCode != http.StatusOK || int64(len(whole)) != m.Size || bytes.Contains(whole, []byte("SECRET")) {
				t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(whole))
			}
			resp, part := fetch(t, srv, alice.Token, m.MediaID, map[string]string{"Range": "bytes=100-1099"})
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[100:1100]) {
				t.Fatalf("Range from S3: %d, %d bytes", resp.StatusCode, len(part))
			}
			big := randomBytes(20<<20, 31) // multipart in S3
			m = upload(t, srv, alice.Token, big)
			if _, got := fetch(t, srv, alice.Token, m.MediaID, nil); !bytes.Equal(got, big) {
				t.Fatal("a 20 MiB file differs after S3")
			}
		})
	}
}
