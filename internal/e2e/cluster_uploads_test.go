package e2e

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/parley-chat/parley/internal/server"
)

// TestClusterUploadContinuesThroughAnyNode: a resumable upload started on
// node0 is continued through node1 (a dropped connection included) and
// node2, which forward to node0, and the media it becomes (in the shared
// S3 bucket, as a cluster keeps media) is served by every node.
func TestClusterUploadContinuesThroughAnyNode(t *testing.T) {
	fake := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(fake.Close)
	cl := startCluster(t, 3, func(c *server.Config) {
		c.S3Endpoint, c.S3Bucket, c.S3AccessKey, c.S3SecretKey, c.S3Region = fake.URL, "parley-media", "k", "s", "us-east-1"
	})
	n0, n1, n2 := cl.nodes[0], cl.nodes[1], cl.nodes[2]
	alice, bob := newAccount(t, n0, "tus"), newAccount(t, n0, "other")
	file := make([]byte, 3<<20)
	_, _ = rand.Read(file)

	path := createUpload(t, n0, alice.Token, len(file), "big file.bin")
	if !strings.HasSuffix(path, ".node0") {
		t.Fatalf("upload path %q does not name its node", path)
	}
	if r := patchAt(t, n0, path, alice.Token, 0, file[:1<<20]); r.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH on node0: %d", r.StatusCode)
	}
	// Through node1, the connection dropping halfway through the body.
	brokenPatch(t, n1, path, alice.Token, 1<<20, file[1<<20:], 1<<20, true)
	off := waitOffset(t, n2, path, alice.Token, 1<<20)
	if off < 1<<20 || off > 2<<20 {
		t.Fatalf("offset after the dropped PATCH through node1: %d", off)
	}
	// Someone else's upload stays invisible through any node.
	if r := tus(t, n2, "HEAD", path, bob.Token, nil, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("bob's HEAD of alice's upload through node2: %d", r.StatusCode)
	}
	// A made-up node, and a forwarded request naming another node: 404.
	if r := tus(t, n1, "HEAD", strings.TrimSuffix(path, "node0")+"node9", alice.Token, nil, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of an upload on a node that does not exist: %d", r.StatusCode)
	}
	if r := tus(t, n1, "HEAD", path, alice.Token, map[string]string{"Parley-Forwarded-By": "node2"}, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("a forwarded request was forwarded again: %d", r.StatusCode)
	}
	finishAndCheck(t, n2, path, alice.Token, file) // finished through node2, downloaded from node2
	if metricValue(t, n1, "parley_uploads_forwarded_total") < 1 || metricValue(t, n2, "parley_uploads_forwarded_total") < 3 {
		t.Fatal("the uploads_forwarded metric did not count the forwarded requests")
	}
	var st struct {
		Media mediaItem `json:"media"`
	}
	api(t, n1, "GET", path, alice.Token, nil, &st)
	for _, n := range cl.nodes {
		if r, got := fetch(t, n, alice.Token, st.Media.MediaID, nil); r.StatusCode != http.StatusOK || !bytes.Equal(got, file) {
			t.Fatalf("download from %s: %d, %d bytes", n.URL, r.StatusCode, len(got))
		}
	}
}
