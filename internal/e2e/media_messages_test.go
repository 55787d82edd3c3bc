package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/media/mediatest"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// uploadNamed posts a file under a name and fails unless it is stored.
func uploadNamed(t testing.TB, srv *servertest.Server, token string, body []byte, name string) mediaItem {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+"/api/v1/media?name="+url.QueryEscape(name), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	st, m := doUpload(t, req)
	if st != http.StatusCreated {
		t.Fatalf("upload %s: status %d", name, st)
	}
	return m
}

// wantMedia is the media object a message referencing m must carry.
func wantMedia(m mediaItem) map[string]any {
	w := map[string]any{"media_id": m.MediaID, "content_type": m.ContentType, "size": float64(m.Size)}
	if m.Width > 0 {
		w["width"], w["height"] = float64(m.Width), float64(m.Height)
	}
	if m.Name != "" {
		w["name"] = m.Name
	}
	if m.Thumbnail != "" {
		w["thumbnail"] = m.Thumbnail
	}
	return w
}

// checkMedia fails unless the message frame or object f carries want as
// its media object (want nil: none).
func checkMedia(t *testing.T, what string, f map[string]any, want map[string]any) {
	t.Helper()
	got, _ := f["media"].(map[string]any)
	switch {
	case want == nil && f["media"] != nil:
		t.Fatalf("%s: carries media %v, want none", what, f["media"])
	case want != nil && !reflect.DeepEqual(got, want):
		t.Fatalf("%s: media = %.300v\nwant %.300v", what, got, want)
	}
}

// TestMediaMessageCarriesPreview: a message that references media carries
// its media object (type, size, dimensions, name and the inline thumbnail)
// everywhere a message goes: the recipient's new_message, the sender's
// other devices, sync, history and the conversation's last_message; an e2ee
// message never carries one.
func TestMediaMessageCarriesPreview(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "pic"), newAccount(t, srv, "pic")
	conv := direct(t, srv, alice, bob)
	photo := uploadNamed(t, srv, alice.Token, mediatest.PhoneJPEG(t, mediatest.PhotoLike(640, 480), 1), "beach.jpg")
	doc := uploadNamed(t, srv, alice.Token, append([]byte("%PDF-1.4\n"), randomBytes(5000, 9)...), "minutes <final>.pdf")
	if photo.Thumbnail == "" || photo.Width != 640 || doc.Thumbnail != "" || doc.Name != "minutes <final>.pdf" {
		t.Fatalf("uploads: photo %+v, doc %+v", photo, doc)
	}
	checkThumbnail(t, photo.Thumbnail)

	a, b := dial(t, srv, alice.Token), dial(t, srv, bob.Token)
	send := func(id, ctype, mediaID string) {
		t.Helper()
		a.send(map[string]any{"type": "send_message", "message_id": id, "conversation_id": conv,
			"content": "", "content_type": ctype, "media_id": mediaID})
		if ack := a.expect("ack"); ack.str("message_id") != id {
			t.Fatalf("ack %v", ack)
		}
	}
	start := time.Now()
	send("photo-1", "image", photo.MediaID)
	m := b.expect("new_message", "presence")
	checkMedia(t, "bob's new_message", m, wantMedia(photo))
	if m.str("media_id") != photo.MediaID || m.str("content_type") != "image" {
		t.Fatalf("new_message %v", m)
	}
	t.Logf("photo message with its %d-byte thumbnail reached bob in %s", len(photo.Thumbnail), time.Since(start))
	send("doc-1", "file", doc.MediaID)
	checkMedia(t, "bob's new_message of the document", b.expect("new_message", "presence"), wantMedia(doc))

	// The sender's other device gets it live too, and a new device through sync.
	alice2 := alice
	alice2.login(t, srv)
	a2 := dial(t, srv, alice2.Token)
	a2.send(map[string]any{"type": "sync", "cursors": map[string]int64{}})
	for _, want := range []mediaItem{photo, doc} {
		checkMedia(t, "sync", a2.expect("new_message"), wantMedia(want))
	}
	a2.expect("sync_complete")

	var page struct {
		Messages []map[string]any `json:"messages"`
	}
	if st := api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages", bob.Token, nil, &page); st != 200 || len(page.Messages) != 2 {
		t.Fatalf("history: %d, %d messages", st, len(page.Messages))
	}
	for _, msg := range page.Messages {
		want := photo
		if msg["media_id"] == doc.MediaID {
			want = doc
		}
		checkMedia(t, "history", msg, wantMedia(want))
	}
	var list struct {
		Conversations []map[string]any `json:"conversations"`
	}
	api(t, srv, "GET", "/api/v1/conversations", bob.Token, nil, &list)
	if len(list.Conversations) != 1 {
		t.Fatalf("bob's conversations: %v", list)
	}
	last, _ := list.Conversations[0]["last_message"].(map[string]any)
	checkMedia(t, "last_message", last, wantMedia(doc))

	// Bob can fetch the full image the thumbnail previews.
	if resp, body := fetch(t, srv, bob.Token, photo.MediaID, nil); resp.StatusCode != 200 || int64(len(body)) != photo.Size {
		t.Fatalf("bob downloads the photo: %d, %d bytes", resp.StatusCode, len(body))
	}

	// An e2ee message that names media carries no preview in clear.
	putKeys(t, srv, alice, 1)
	putKeys(t, srv, bob, 1)
	putKeys(t, srv, alice2, 1)
	secret := uploadNamed(t, srv, alice.Token, encodePNG(t, mediatest.Quadrants(64, 64)), "secret.png")
	entry := map[string]string{"type": "prekey", "body": b64([]byte("sealed"))}
	a.send(map[string]any{"type": "send_message", "message_id": "e2ee-1", "conversation_id": conv, "content_type": "e2ee",
		"media_id": secret.MediaID, "content": map[string]any{"v": 1, "ciphertexts": map[string]any{bob.DeviceID: entry, alice2.DeviceID: entry}}})
	a.expect("ack")
	e := b.expect("new_message", "presence")
	if e.str("content_type") != "e2ee" || e.str("media_id") != secret.MediaID {
		t.Fatalf("e2ee new_message %v", e)
	}
	checkMedia(t, "e2ee new_message", e, nil)
	page.Messages = nil
	api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages?after=2", bob.Token, nil, &page)
	if len(page.Messages) != 1 {
		t.Fatalf("history after the e2ee message: %v", page.Messages)
	}
	checkMedia(t, "e2ee history", page.Messages[0], nil)
}
