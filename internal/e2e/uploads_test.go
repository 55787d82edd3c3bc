package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/media/mediatest"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// The tests in this file speak tus 1.0 over raw HTTP.

// tus sends one tus request and returns the response (body read and closed).
func tus(t testing.TB, srv *servertest.Server, method, path, token string, hdr map[string]string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// createUpload starts a resumable upload and returns its path.
func createUpload(t testing.TB, srv *servertest.Server, token string, length int, filename string) string {
	t.Helper()
	resp := tus(t, srv, "POST", "/api/v1/uploads", token, map[string]string{
		"Upload-Length":   strconv.Itoa(length),
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte(filename)),
	}, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || loc == "" || resp.Header.Get("Tus-Resumable") != "1.0.0" {
		t.Fatalf("create upload: %d, Location %q, headers %v", resp.StatusCode, loc, resp.Header)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}

func patchAt(t testing.TB, srv *servertest.Server, path, token string, offset int, chunk []byte) *http.Response {
	t.Helper()
	return tus(t, srv, "PATCH", path, token, map[string]string{
		"Upload-Offset": strconv.Itoa(offset), "Content-Type": "application/offset+octet-stream",
	}, chunk)
}

func headOffset(t testing.TB, srv *servertest.Server, path, token string) int {
	t.Helper()
	resp := tus(t, srv, "HEAD", path, token, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("HEAD %s: %d %v", path, resp.StatusCode, resp.Header)
	}
	n, err := strconv.Atoi(resp.Header.Get("Upload-Offset"))
	if err != nil {
		t.Fatalf("HEAD Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return n
}

// brokenPatch starts a PATCH that declares the whole rest of the file but
// sends only part of it, over a raw connection; close says whether the
// connection is then closed (a dropped connection) or left hanging (a
// pulled cable: the server hears nothing more).
func brokenPatch(t testing.TB, srv *servertest.Server, path, token string, offset int, rest []byte, send int, close bool) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.URL[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PATCH %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n", path, token)
	fmt.Fprintf(w, "Content-Type: application/offset+octet-stream\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n", offset, len(rest))
	_, _ = w.Write(rest[:send])
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if close {
		conn.Close()
	}
	return conn
}

// waitOffset waits until the server has stored at least min bytes.
func waitOffset(t testing.TB, srv *servertest.Server, path, token string, min int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := headOffset(t, srv, path, token)
		if n >= min || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finishAndCheck sends the rest from the server's offset and checks the
// media item it becomes.
func finishAndCheck(t *testing.T, srv *servertest.Server, path, token string, file []byte) {
	t.Helper()
	off := headOffset(t, srv, path, token)
	resp := patchAt(t, srv, path, token, off, file[off:])
	id := resp.Header.Get("Parley-Media-Id")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(file)) || id == "" {
		t.Fatalf("final PATCH: %d %v", resp.StatusCode, resp.Header)
	}
	var st struct {
		Complete bool      `json:"complete"`
		Offset   int       `json:"offset"`
		Media    mediaItem `json:"media"`
	}
	if code := api(t, srv, "GET", path, token, nil, &st); code != http.StatusOK || !st.Complete || st.Media.MediaID != id || st.Offset != len(file) {
		t.Fatalf("upload status: %d %+v", code, st)
	}
	if st.Media.Name != "big file.bin" {
		t.Fatalf("name %q", st.Media.Name)
	}
	if r, got := fetch(t, srv, token, id, nil); r.StatusCode != http.StatusOK || !bytes.Equal(got, file) {
		t.Fatalf("download after a resumed upload: %d, %d bytes, equal %v", r.StatusCode, len(got), bytes.Equal(got, file))
	}
	// The last PATCH answered again (its answer was lost): same media.
	if resp := patchAt(t, srv, path, token, len(file), nil); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Parley-Media-Id") != id {
		t.Fatalf("repeated final PATCH: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestResumableUploadSurvivesADroppedConnection(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "tus")
	file := randomBytes(3<<20, 21)
	path := createUpload(t, srv, alice.Token, len(file), "big file.bin")
	if n := headOffset(t, srv, path, alice.Token); n != 0 {
		t.Fatalf("new upload at %d", n)
	}
	if resp := patchAt(t, srv, path, alice.Token, 0, file[:1<<20]); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.Itoa(1<<20) {
		t.Fatalf("first PATCH: %d %v", resp.StatusCode, resp.Header)
	}
	// The connection drops 700 KB into the next PATCH.
	brokenPatch(t, srv, path, alice.Token, 1<<20, file[1<<20:], 700<<10, true)
	off := waitOffset(t, srv, path, alice.Token, 1<<20+600<<10)
	if off <= 1<<20 || off > 1<<20+700<<10 {
		t.Fatalf("after the drop the server is at %d", off)
	}
	// A PATCH at a stale offset: 409.
	if resp := patchAt(t, srv, path, alice.Token, 1<<20, file[1<<20:2<<20]); resp.StatusCode != http.StatusConflict {
		t.Fatalf("stale offset: %d, want 409", resp.StatusCode)
	}
	finishAndCheck(t, srv, path, alice.Token, file)
}

// TestResumableUploadAfterAPulledCable: the old request never ends (the
// server hears nothing more, not even a close); the client comes back on a
// new connection and takes over the upload at once.
func TestResumableUploadAfterAPulledCable(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "cable")
	file := randomBytes(2<<20, 22)
	path := createUpload(t, srv, alice.Token, len(file), "big file.bin")
	conn := brokenPatch(t, srv, path, alice.Token, 0, file, 500<<10, false)
	defer conn.Close()
	waitOffset(t, srv, path, alice.Token, 400<<10)
	start := time.Now()
	finishAndCheck(t, srv, path, alice.Token, file)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("taking over the hung upload took %s", took)
	}
}

func TestResumableUploadSurvivesARestart(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "restart")
	file := randomBytes(2<<20+12345, 23)
	path := createUpload(t, srv, alice.Token, len(file), "big file.bin")
	if resp := patchAt(t, srv, path, alice.Token, 0, file[:1<<20]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	brokenPatch(t, srv, path, alice.Token, 1<<20, file[1<<20:], 300<<10, true)
	waitOffset(t, srv, path, alice.Token, 1<<20+200<<10)
	srv = srv.Restart()
	off := headOffset(t, srv, path, alice.Token)
	if off < 1<<20 {
		t.Fatalf("after a restart the upload is at %d", off)
	}
	finishAndCheck(t, srv, path, alice.Token, file)
}

func TestTusProtocolDetails(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "tusp"), newAccount(t, srv, "tusp")
	// OPTIONS advertises the version, the extensions and the limit.
	req, _ := http.NewRequest("OPTIONS", srv.URL+"/api/v1/uploads", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Tus-Version") != "1.0.0" ||
		resp.Header.Get("Tus-Max-Size") != strconv.Itoa(100<<20) || resp.Header.Get("Tus-Extension") == "" {
		t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}
	// Without Tus-Resumable: 412.
	req, _ = http.NewRequest("POST", srv.URL+"/api/v1/uploads", nil)
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	req.Header.Set("Upload-Length", "10")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("without Tus-Resumable: %d, want 412", resp.StatusCode)
	}
	// Without Upload-Length: 400. Zero: 422.
	if r := tus(t, srv, "POST", "/api/v1/uploads", alice.Token, nil, nil); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("without Upload-Length: %d", r.StatusCode)
	}
	if r := tus(t, srv, "POST", "/api/v1/uploads", alice.Token, map[string]string{"Upload-Length": "0"}, nil); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("empty upload: %d", r.StatusCode)
	}
	// creation-with-upload: the whole file in the POST.
	png := encodePNG(t, mediatest.Quadrants(40, 30))
	r := tus(t, srv, "POST", "/api/v1/uploads", alice.Token, map[string]string{
		"Upload-Length": strconv.Itoa(len(png)), "Content-Type": "application/offset+octet-stream",
	}, png)
	if r.StatusCode != http.StatusCreated || r.Header.Get("Parley-Media-Id") == "" || r.Header.Get("Upload-Offset") != strconv.Itoa(len(png)) {
		t.Fatalf("creation-with-upload: %d %v", r.StatusCode, r.Header)
	}
	var info mediaItem
	if st := api(t, srv, "GET", "/api/v1/media/"+r.Header.Get("Parley-Media-Id")+"/info", alice.Token, nil, &info); st != http.StatusOK || info.ContentType != "image/png" || info.Thumbnail == "" {
		t.Fatalf("media of a one-request upload: %d %+v", st, info)
	}
	path := createUpload(t, srv, alice.Token, 100, "x")
	// Another user's upload does not exist for bob.
	if r := tus(t, srv, "HEAD", path, bob.Token, nil, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD by another user: %d", r.StatusCode)
	}
	if r := patchAt(t, srv, path, bob.Token, 0, []byte("x")); r.StatusCode != http.StatusNotFound {
		t.Fatalf("PATCH by another user: %d", r.StatusCode)
	}
	// Wrong body type: 415. Past the declared length: 400.
	if r := tus(t, srv, "PATCH", path, alice.Token, map[string]string{"Upload-Offset": "0", "Content-Type": "application/json"}, []byte("{}")); r.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("PATCH with another Content-Type: %d", r.StatusCode)
	}
	if r := patchAt(t, srv, path, alice.Token, 0, make([]byte, 101)); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("PATCH past the length: %d", r.StatusCode)
	}
	// Termination.
	if r := tus(t, srv, "DELETE", path, alice.Token, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
	if r := tus(t, srv, "HEAD", path, alice.Token, nil, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD after DELETE: %d", r.StatusCode)
	}
	// A garbage id is just unknown.
	if r := tus(t, srv, "HEAD", "/api/v1/uploads/..%2F..%2Fparley.db", alice.Token, nil, nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of a path-like id: %d", r.StatusCode)
	}
}

// The issue's own words: a 100 MB file survives a pulled network cable.
func TestResumable100MBUploadAfterAPulledCable(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 100 MB")
	}
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "cable100")
	file := randomBytes(100<<20, 100)
	path := createUpload(t, srv, alice.Token, len(file), "big file.bin")
	conn := brokenPatch(t, srv, path, alice.Token, 0, file, 60<<20, false) // the cable goes at 60 MB
	defer conn.Close()
	// Everything sent before the cable went has arrived; the server now hears
	// nothing more on that request, and the client resumes on a new one.
	waitOffset(t, srv, path, alice.Token, 60<<20)
	finishAndCheck(t, srv, path, alice.Token, file)
}
