package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/media/mediatest"
	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// mediaItem is the answer of an upload.
type mediaItem struct {
	MediaID     string `json:"media_id"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
	Thumbnail   string `json:"thumbnail"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// uploadRaw posts a file as the raw request body.
func uploadRaw(t testing.TB, srv *servertest.Server, token string, body []byte, contentType string) (int, mediaItem) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+"/api/v1/media?name=upload.bin", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	return doUpload(t, req)
}

func doUpload(t testing.TB, req *http.Request) (int, mediaItem) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	var m mediaItem
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("upload answer %q: %v", raw, err)
		}
	}
	return resp.StatusCode, m
}

// upload posts a file and fails unless it is stored.
func upload(t testing.TB, srv *servertest.Server, token string, body []byte) mediaItem {
	t.Helper()
	st, m := uploadRaw(t, srv, token, body, "application/octet-stream")
	if st != http.StatusCreated {
		t.Fatalf("upload: status %d", st)
	}
	return m
}

// fetch downloads a media item with optional extra headers.
func fetch(t testing.TB, srv *servertest.Server, token, id string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", srv.URL+"/api/v1/media/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET media: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func checkThumbnail(t *testing.T, thumb string) {
	t.Helper()
	b64, ok := strings.CutPrefix(thumb, "data:image/jpeg;base64,")
	if !ok || len(thumb) >= 10*1024 {
		t.Fatalf("thumbnail is not a JPEG data: URL under 10 KB (%d bytes): %.40q", len(thumb), thumb)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(raw)); err != nil {
		t.Fatalf("thumbnail does not decode: %v", err)
	}
}

func encodePNG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMediaRoundTripOfEachType(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "media")
	ogg := append([]byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead"), randomBytes(5000, 1)...)
	mp4 := append([]byte("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"), randomBytes(200_000, 2)...)
	for _, tc := range []struct {
		name, ctype, kind string
		body              []byte
		image             bool
	}{
		{"jpeg photo", "image/jpeg", "image", mediatest.PhoneJPEG(t, mediatest.PhotoLike(800, 600), 1), true},
		{"png", "image/png", "image", encodePNG(t, mediatest.Quadrants(300, 200)), true},
		{"gif", "image/gif", "image", mediatest.CommentedGIF(t), true},
		{"webp", "image/webp", "image", mediatest.LossyWebP, true},
		{"mp4 video", "video/mp4", "video", mp4, false},
		{"ogg voice note", "audio/ogg", "voice", ogg, false},
		{"pdf document", "application/pdf", "file", append([]byte("%PDF-1.4\n"), randomBytes(30_000, 3)...), false},
		{"text", "text/plain; charset=utf-8", "file", []byte("meeting notes\n"), false},
		{"binary", "application/octet-stream", "file", randomBytes(1<<20, 4), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := upload(t, srv, alice.Token, tc.body)
			if m.MediaID == "" || m.ContentType != tc.ctype || m.Kind != tc.kind || m.URL != "/api/v1/media/"+m.MediaID {
				t.Fatalf("upload answer %+v; want content_type %q, kind %q", m, tc.ctype, tc.kind)
			}
			resp, got := fetch(t, srv, alice.Token, m.MediaID, nil)
			if resp.StatusCode != http.StatusOK || int64(len(got)) != m.Size {
				t.Fatalf("download: status %d, %d bytes, size says %d", resp.StatusCode, len(got), m.Size)
			}
			if resp.Header.Get("Content-Type") != tc.ctype {
				t.Fatalf("served as %q", resp.Header.Get("Content-Type"))
			}
			if !tc.image {
				if !bytes.Equal(got, tc.body) || m.Thumbnail != "" {
					t.Fatal("a non-image changed on the way, or got a thumbnail")
				}
				return
			}
			if bytes.Contains(got, []byte("SECRET")) {
				t.Fatal("metadata survived the upload")
			}
			if m.Width == 0 || m.Height == 0 {
				t.Fatalf("no dimensions: %+v", m)
			}
			checkThumbnail(t, m.Thumbnail)
			if _, _, err := image.Decode(bytes.NewReader(got)); err != nil && tc.ctype != "image/webp" {
				t.Fatalf("downloaded image does not decode: %v", err)
			}
		})
	}
}

func TestMultipartUpload(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "multi")
	img := encodePNG(t, mediatest.Quadrants(50, 40))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("caption", "ignored")
	fw, _ := mw.CreateFormFile("file", "holiday photo.png")
	_, _ = fw.Write(img)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/media", &body)
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	st, m := doUpload(t, req)
	if st != http.StatusCreated || m.ContentType != "image/png" || m.Width != 50 || m.Height != 40 || m.Name != "holiday photo.png" {
		t.Fatalf("multipart upload: %d %+v", st, m)
	}
	resp, _ := fetch(t, srv, alice.Token, m.MediaID, nil)
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline") || !strings.Contains(cd, "holiday photo.png") {
		t.Fatalf("Content-Disposition %q", cd)
	}
}

func TestMediaTypeComesFromTheBytes(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "sniff")
	// A PNG sent as an .exe is a PNG.
	st, m := uploadRaw(t, srv, alice.Token, encodePNG(t, mediatest.Quadrants(8, 8)), "application/x-msdownload")
	if st != http.StatusCreated || m.ContentType != "image/png" {
		t.Fatalf("PNG named .exe: %d %+v", st, m)
	}
	// HTML claimed as an image is HTML, served as an inert attachment.
	st, m = uploadRaw(t, srv, alice.Token, []byte("<!DOCTYPE html><html><script>fetch('/api/v1/users/me')</script></html>"), "image/png")
	if st != http.StatusCreated || !strings.HasPrefix(m.ContentType, "text/html") || m.Kind != "file" {
		t.Fatalf("HTML upload: %d %+v", st, m)
	}
	resp, _ := fetch(t, srv, alice.Token, m.MediaID, nil)
	h := resp.Header
	if !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") || h.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("HTML served with %v", h)
	}
	// A zero-byte file is refused.
	if st, _ := uploadRaw(t, srv, alice.Token, nil, "text/plain"); st != http.StatusUnprocessableEntity {
		t.Fatalf("zero-byte upload: status %d, want 422", st)
	}
	// A JPEG cut inside its image data is stored as it is, without a
	// thumbnail; one cut inside its headers is not an image: 422.
	whole := mediatest.PhoneJPEG(t, mediatest.Noise(300, 200, 5), 1)
	sos := bytes.Index(whole, []byte{0xFF, 0xDA})
	st, m = uploadRaw(t, srv, alice.Token, whole[:sos+3000], "image/jpeg")
	if st != http.StatusCreated || m.ContentType != "image/jpeg" || m.Thumbnail != "" || m.Width != 300 {
		t.Fatalf("truncated JPEG: %d %+v", st, m)
	}
	if st, _ := uploadRaw(t, srv, alice.Token, whole[:sos-200], "image/jpeg"); st != http.StatusUnprocessableEntity {
		t.Fatalf("JPEG cut in its headers: status %d, want 422", st)
	}
	// A 20,000 × 20,000 PNG bomb: accepted with its size, never decoded.
	start := time.Now()
	st, m = uploadRaw(t, srv, alice.Token, mediatest.BombPNG(20000, 20000), "image/png")
	if st != http.StatusCreated || m.Width != 20000 || m.Height != 20000 || m.Thumbnail != "" {
		t.Fatalf("PNG bomb: %d %+v", st, m)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the bomb took %s", took)
	}
}

func TestEXIFOrientationAndGPSStripped(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "exif")
	// Stored landscape (64×32), EXIF says rotate 90° clockwise.
	m := upload(t, srv, alice.Token, mediatest.PhoneJPEG(t, mediatest.Quadrants(64, 32), 6))
	if m.Width != 32 || m.Height != 64 {
		t.Fatalf("size %dx%d, want 32x64 as displayed", m.Width, m.Height)
	}
	checkThumbnail(t, m.Thumbnail)
	_, got := fetch(t, srv, alice.Token, m.MediaID, nil)
	for _, secret := range []string{"SECRET", "Photoshop", "xap/1.0"} {
		if bytes.Contains(got, []byte(secret)) {
			t.Fatalf("%q survived", secret)
		}
	}
	// The GPS latitude rationals (48/1, 51/1, 2417/100) are gone.
	if bytes.Contains(got, []byte{0, 0, 0, 48, 0, 0, 0, 1, 0, 0, 0, 51, 0, 0, 0, 1}) {
		t.Fatal("GPS coordinates survived")
	}
	if !bytes.Contains(got, []byte("Exif\x00\x00MM\x00\x2a")) {
		t.Fatal("the orientation was dropped with the rest of EXIF")
	}
}

func TestMediaRangeETagAndCaching(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "range")
	body := randomBytes(300_000, 9)
	m := upload(t, srv, alice.Token, body)
	resp, got := fetch(t, srv, alice.Token, m.MediaID, map[string]string{"Range": "bytes=1000-1999"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[1000:2000]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(body)) {
		t.Fatalf("Range: status %d, %d bytes, Content-Range %q", resp.StatusCode, len(got), resp.Header.Get("Content-Range"))
	}
	resp, got = fetch(t, srv, alice.Token, m.MediaID, map[string]string{"Range": "bytes=-100"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[len(body)-100:]) {
		t.Fatalf("suffix Range: status %d", resp.StatusCode)
	}
	resp, _ = fetch(t, srv, alice.Token, m.MediaID, nil)
	etag := resp.Header.Get("ETag")
	if etag == "" || !strings.HasPrefix(resp.Header.Get("Cache-Control"), "private, max-age=") ||
		resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, got = fetch(t, srv, alice.Token, m.MediaID, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(got) != 0 {
		t.Fatalf("If-None-Match: status %d", resp.StatusCode)
	}
	resp, _ = fetch(t, srv, alice.Token, m.MediaID, map[string]string{"Range": "bytes=999999-"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: status %d", resp.StatusCode)
	}
}

func TestMediaAuthorization(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, carol := newAccount(t, srv, "auth"), newAccount(t, srv, "auth"), newAccount(t, srv, "auth")
	m := upload(t, srv, alice.Token, randomBytes(1000, 5))
	status := func(token, id string) int {
		resp, _ := fetch(t, srv, token, id, nil)
		return resp.StatusCode
	}
	if st := status(alice.Token, m.MediaID); st != http.StatusOK {
		t.Fatalf("uploader: %d", st)
	}
	if st := status(bob.Token, m.MediaID); st != http.StatusForbidden {
		t.Fatalf("bob before any message: %d, want 403", st)
	}
	if st := status("", m.MediaID); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", st)
	}
	if st := status(alice.Token, "01HZZZZZZZZZZZZZZZZZZZZZZZ"); st != http.StatusNotFound {
		t.Fatalf("unknown id: %d, want 404", st)
	}
	// Alice sends it in a group with bob: bob may read it, carol may not.
	g := group(t, srv, alice, "photos", bob)
	s := dial(t, srv, alice.Token)
	s.send(map[string]any{"type": "send_message", "message_id": "m1", "conversation_id": g, "content": "look", "content_type": "file", "media_id": m.MediaID})
	s.expect("ack")
	if st := status(bob.Token, m.MediaID); st != http.StatusOK {
		t.Fatalf("member of the referencing group: %d", st)
	}
	if st := status(carol.Token, m.MediaID); st != http.StatusForbidden {
		t.Fatalf("carol, in no referencing conversation: %d, want 403", st)
	}
	// <img src="...?token=">: the token in the query works too.
	resp, err := http.Get(srv.URL + "/api/v1/media/" + m.MediaID + "?token=" + bob.Token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("?token=: %d", resp.StatusCode)
	}
	// The metadata (with the thumbnail) under the same rules.
	if st := api(t, srv, "GET", "/api/v1/media/"+m.MediaID+"/info", bob.Token, nil, nil); st != http.StatusOK {
		t.Fatalf("info for bob: %d", st)
	}
	if st := api(t, srv, "GET", "/api/v1/media/"+m.MediaID+"/info", carol.Token, nil, nil); st != http.StatusForbidden {
		t.Fatalf("info for carol: %d", st)
	}
	// Bob leaves the group: no longer a member, no longer a reader.
	if st := api(t, srv, "DELETE", "/api/v1/groups/"+g+"/members/"+bob.UserID, bob.Token, nil, nil); st != http.StatusNoContent {
		t.Fatalf("leave: %d", st)
	}
	if st := status(bob.Token, m.MediaID); st != http.StatusForbidden {
		t.Fatalf("bob after leaving: %d, want 403", st)
	}
}

func TestMediaMessagesMustReferenceOwnUploads(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "ref"), newAccount(t, srv, "ref")
	conv := direct(t, srv, alice, bob)
	mine := upload(t, srv, bob.Token, encodePNG(t, mediatest.Quadrants(10, 10)))
	theirs := upload(t, srv, alice.Token, encodePNG(t, mediatest.Quadrants(12, 12)))
	s := dial(t, srv, bob.Token)
	for i, tc := range []struct {
		ctype, media string
		status       int64
	}{
		{"image", theirs.MediaID, 422},
		{"image", "01HZZZZZZZZZZZZZZZZZZZZZZZ", 422},
		{"text", theirs.MediaID, 422}, // a reference grants access, whatever the type
		{"image", "", 400},
		{"image", mine.MediaID, 0},
	} {
		id := fmt.Sprintf("ref-%d", i)
		s.send(map[string]any{"type": "send_message", "message_id": id, "conversation_id": conv, "content": "x", "content_type": tc.ctype, "media_id": tc.media})
		f := s.next(5 * time.Second)
		switch {
		case tc.status == 0 && f.str("type") != "ack":
			t.Fatalf("%s with own media: %v", tc.ctype, f)
		case tc.status != 0 && (f.str("type") != "error" || f.num("status") != tc.status || f.str("ref") != id):
			t.Fatalf("%s with media %q: %v, want error %d", tc.ctype, tc.media, f, tc.status)
		}
	}
}

func TestMediaGCDeletesOnlyUnreferenced(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MediaGCAfter = 2 * time.Second })
	alice, bob := newAccount(t, srv, "gc"), newAccount(t, srv, "gc")
	conv := direct(t, srv, alice, bob)
	sent := upload(t, srv, alice.Token, randomBytes(5000, 6))
	s := dial(t, srv, alice.Token)
	s.send(map[string]any{"type": "send_message", "message_id": "gc-1", "conversation_id": conv, "content": "", "content_type": "file", "media_id": sent.MediaID})
	s.expect("ack")
	unsent := upload(t, srv, alice.Token, randomBytes(5000, 7))
	time.Sleep(2500 * time.Millisecond)
	if _, _, err := srv.Node.CollectMedia(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, _ := fetch(t, srv, alice.Token, unsent.MediaID, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unsent upload after collection: %d, want 404", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(srv.Config.DataDir, "media", strings.ToLower(unsent.MediaID[24:]), unsent.MediaID)); !os.IsNotExist(err) {
		t.Fatalf("the blob of the collected upload is still on disk: %v", err)
	}
	if resp, got := fetch(t, srv, bob.Token, sent.MediaID, nil); resp.StatusCode != http.StatusOK || len(got) != 5000 {
		t.Fatalf("sent media after collection: %d", resp.StatusCode)
	}
	// A late message naming the collected media is refused.
	s.send(map[string]any{"type": "send_message", "message_id": "gc-2", "conversation_id": conv, "content": "", "content_type": "file", "media_id": unsent.MediaID})
	if f := s.expect("error"); f.num("status") != 422 {
		t.Fatalf("message with collected media: %v", f)
	}
}

func TestUploadSizeLimit(t *testing.T) {
	const limit = 256 << 10
	srv := servertest.Start(t, func(c *server.Config) { c.MaxUploadBytes = limit })
	alice := newAccount(t, srv, "limit")
	// Declared too large, with Expect: 100-continue: refused before the
	// client sends a byte of the body.
	body := &countingReader{r: bytes.NewReader(randomBytes(limit+1, 8))}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/media", body)
	req.ContentLength = limit + 1
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	req.Header.Set("Expect", "100-continue")
	if st, _ := doUpload(t, req); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared over the limit: %d, want 413", st)
	}
	if body.n > 0 {
		t.Fatalf("the server let the client send %d bytes before refusing", body.n)
	}
	// No declared length (chunked): refused once the limit is crossed.
	req, _ = http.NewRequest("POST", srv.URL+"/api/v1/media", io.MultiReader(bytes.NewReader(randomBytes(limit, 9)), strings.NewReader("one byte too many")))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	if st, _ := doUpload(t, req); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed over the limit: %d, want 413", st)
	}
	// Exactly the limit passes.
	if st, _ := uploadRaw(t, srv, alice.Token, randomBytes(limit, 10), ""); st != http.StatusCreated {
		t.Fatalf("at the limit: %d", st)
	}
	// A resumable upload declaring too much: 413 at creation.
	req, _ = http.NewRequest("POST", srv.URL+"/api/v1/uploads", nil)
	req.Header.Set("Authorization", "Bearer "+alice.Token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", fmt.Sprint(limit+1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("tus creation over the limit: %d, want 413", resp.StatusCode)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
