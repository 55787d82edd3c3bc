package media_test

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/parley-chat/parley/internal/media"
	"github.com/parley-chat/parley/internal/media/blobstest"
	"github.com/parley-chat/parley/internal/testskip"
)

// TestS3BlobsFake runs the suite against an in-process fake S3 (gofakes3
// with its memory backend): fast, always on.
func TestS3BlobsFake(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	var n atomic.Int64
	blobstest.Run(t, func(t *testing.T) media.Blobs {
		b, err := media.NewS3(t.Context(), media.S3Config{
			Endpoint: srv.URL, Bucket: fmt.Sprintf("parley-test-%d", n.Add(1)),
			AccessKey: "test", SecretKey: "test-secret", Region: "us-east-1",
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// S3FromEnv parses PARLEY_TEST_S3, a URL naming a real S3-compatible
// server, credentials and bucket:
//
//	http://ACCESS_KEY:SECRET_KEY@127.0.0.1:7070/BUCKET?region=us-east-1
//
// scripts/s3-test-server.sh starts one and prints it.
func s3FromEnv(t *testing.T) media.S3Config {
	raw := os.Getenv("PARLEY_TEST_S3")
	if raw == "" {
		testskip.Skip(t, "PARLEY_TEST_S3 is not set: skipping the suite against a real S3-compatible server "+
			"(run `eval \"$(scripts/s3-test-server.sh)\"` to start one and set it)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.Host == "" {
		t.Fatalf("PARLEY_TEST_S3=%q: want http://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET?region=R", raw)
	}
	secret, _ := u.User.Password()
	bucket := strings.Trim(u.Path, "/")
	if bucket == "" {
		bucket = "parley-test"
	}
	return media.S3Config{
		Endpoint: u.Scheme + "://" + u.Host, Bucket: bucket,
		AccessKey: u.User.Username(), SecretKey: secret, Region: u.Query().Get("region"),
	}
}

// TestS3BlobsReal runs the same suite against a real server, when
// PARLEY_TEST_S3 names one; each subtest gets its own key prefix.
func TestS3BlobsReal(t *testing.T) {
	cfg := s3FromEnv(t)
	run := time.Now().UnixNano()
	var n atomic.Int64
	blobstest.Run(t, func(t *testing.T) media.Blobs {
		c := cfg
		c.Prefix = fmt.Sprintf("blobstest-%d-%d/", run, n.Add(1))
		b, err := media.NewS3(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
