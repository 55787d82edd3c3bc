package e2e

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/server/servertest"
)

var b64 = base64.StdEncoding.EncodeToString

func x25519Public(t testing.TB) string {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return b64(k.PublicKey().Bytes())
}

// keyUpload builds a valid PUT /api/v1/keys body with n one-time prekeys.
func keyUpload(t testing.TB, n int) map[string]any {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	spk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	otks := make([]map[string]any, n)
	for i := range otks {
		otks[i] = map[string]any{"key_id": i + 1, "public_key": x25519Public(t)}
	}
	return map[string]any{
		"identity_key": x25519Public(t),
		"signing_key":  b64(pub),
		"signed_prekey": map[string]any{
			"key_id": 1, "public_key": b64(spk.PublicKey().Bytes()),
			"signature": b64(ed25519.Sign(priv, spk.PublicKey().Bytes())),
		},
		"one_time_prekeys": otks,
	}
}

func putKeys(t testing.TB, srv *servertest.Server, a account, n int) {
	t.Helper()
	if st := api(t, srv, "PUT", "/api/v1/keys", a.Token, keyUpload(t, n), nil); st != http.StatusNoContent {
		t.Fatalf("PUT keys: %d", st)
	}
}

type bundles struct {
	Devices []struct {
		DeviceID      string `json:"device_id"`
		IdentityKey   string `json:"identity_key"`
		SigningKey    string `json:"signing_key"`
		SignedPrekey  map[string]any
		OneTimePrekey *struct {
			KeyID     int64  `json:"key_id"`
			PublicKey string `json:"public_key"`
		} `json:"one_time_prekey"`
	} `json:"devices"`
}

func TestKeyDirectory(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")

	bad := keyUpload(t, 1)
	bad["signed_prekey"].(map[string]any)["signature"] = b64(make([]byte, 64))
	if st := api(t, srv, "PUT", "/api/v1/keys", bob.Token, bad, nil); st != http.StatusUnprocessableEntity {
		t.Fatalf("bad signature: %d, want 422", st)
	}
	short := keyUpload(t, 0)
	short["identity_key"] = b64([]byte("short"))
	if st := api(t, srv, "PUT", "/api/v1/keys", bob.Token, short, nil); st != http.StatusUnprocessableEntity {
		t.Fatalf("short identity key: %d, want 422", st)
	}
	if st := api(t, srv, "PUT", "/api/v1/keys", bob.Token, map[string]any{"identity_key": x25519Public(t)}, nil); st != http.StatusBadRequest {
		t.Fatalf("missing fields: %d, want 400", st)
	}
	if st := api(t, srv, "PUT", "/api/v1/keys", "", keyUpload(t, 1), nil); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", st)
	}
	putKeys(t, srv, bob, 10)
	var count struct {
		N int `json:"one_time_prekeys"`
	}
	api(t, srv, "GET", "/api/v1/keys/count", bob.Token, nil, &count)
	if count.N != 10 {
		t.Fatalf("count %d, want 10", count.N)
	}

	// Twenty concurrent claims of ten prekeys: each prekey handed out once.
	var mu sync.Mutex
	seen := map[int64]int{}
	empty := 0
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b bundles
			if st := api(t, srv, "GET", "/api/v1/keys/"+bob.UserID, alice.Token, nil, &b); st != 200 || len(b.Devices) != 1 {
				t.Errorf("claim: %d %+v", st, b)
				return
			}
			d := b.Devices[0]
			if d.DeviceID != bob.DeviceID || d.IdentityKey == "" || d.SigningKey == "" || d.SignedPrekey["signature"] == "" {
				t.Errorf("bundle incomplete: %+v", d)
			}
			mu.Lock()
			defer mu.Unlock()
			if d.OneTimePrekey == nil {
				empty++
			} else {
				seen[d.OneTimePrekey.KeyID]++
			}
		}()
	}
	wg.Wait()
	if len(seen) != 10 || empty != 10 {
		t.Fatalf("claims: %d distinct prekeys, %d empty (%v)", len(seen), empty, seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("prekey %d claimed %d times", id, n)
		}
	}
	if st := api(t, srv, "GET", "/api/v1/keys/01NOSUCHUSER", alice.Token, nil, nil); st != 404 {
		t.Fatalf("keys of an unknown user: %d", st)
	}
}

func TestE2EEEnvelopeCoversExactlyTheDevices(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := direct(t, srv, alice, bob)
	alice2, bob2 := alice, bob
	alice2.login(t, srv)
	bob2.login(t, srv)
	for _, a := range []account{alice, alice2, bob, bob2} {
		putKeys(t, srv, a, 2)
	}
	a := dial(t, srv, alice.Token)
	a2, b1, b2 := dial(t, srv, alice2.Token), dial(t, srv, bob.Token), dial(t, srv, bob2.Token)
	entry := func(body string) map[string]string {
		return map[string]string{"type": "prekey", "body": b64([]byte(body))}
	}
	send := func(id string, devices map[string]map[string]string) {
		a.send(map[string]any{"type": "send_message", "message_id": id, "conversation_id": conv, "content_type": "e2ee",
			"content": map[string]any{"v": 1, "ciphertexts": devices}})
	}

	send("e2e-1", map[string]map[string]string{bob.DeviceID: entry("for bob 1"), alice2.DeviceID: entry("for alice 2")})
	e := a.expect("error")
	missing, _ := e["missing_devices"].([]any)
	extra, _ := e["extra_devices"].([]any)
	if e.num("status") != 409 || e.str("ref") != "e2e-1" || len(missing) != 1 || missing[0] != bob2.DeviceID || extra == nil || len(extra) != 0 {
		t.Fatalf("envelope without bob's second device: %v", e)
	}
	send("e2e-2", map[string]map[string]string{bob.DeviceID: entry("1"), bob2.DeviceID: entry("2"), alice2.DeviceID: entry("3"), alice.DeviceID: entry("self"), "01FORGOTTEN": entry("x")})
	e = a.expect("error")
	extra, _ = e["extra_devices"].([]any)
	if e.num("status") != 409 || len(extra) != 2 {
		t.Fatalf("envelope with the sending device and a stale one: %v", e)
	}

	send("e2e-3", map[string]map[string]string{bob.DeviceID: entry("for bob 1"), bob2.DeviceID: entry("for bob 2"), alice2.DeviceID: entry("for alice 2")})
	if ack := a.expect("ack"); ack.num("seq") != 1 {
		t.Fatalf("ack %v", ack)
	}
	for dev, s := range map[string]*sock{bob.DeviceID: b1, bob2.DeviceID: b2, alice2.DeviceID: a2} {
		m := s.expect("new_message")
		content, _ := m["content"].(map[string]any)
		cts, _ := content["ciphertexts"].(map[string]any)
		if m.str("content_type") != "e2ee" || content["v"] != float64(1) || len(cts) != 1 || cts[dev] == nil {
			t.Fatalf("device %s received %v: want only its own ciphertext", dev, m)
		}
	}
	// History shows each device its own entry only.
	var page struct {
		Messages []struct {
			Content struct {
				Ciphertexts map[string]any `json:"ciphertexts"`
			} `json:"content"`
		} `json:"messages"`
	}
	api(t, srv, "GET", "/api/v1/conversations/"+conv+"/messages", bob2.Token, nil, &page)
	if len(page.Messages) != 1 || len(page.Messages[0].Content.Ciphertexts) != 1 || page.Messages[0].Content.Ciphertexts[bob2.DeviceID] == nil {
		t.Fatalf("history for bob's second device: %+v", page)
	}
	// A revoked device leaves the directory: the next envelope must drop it.
	if st := api(t, srv, "DELETE", "/api/v1/users/me/devices/"+bob2.DeviceID, bob.Token, nil, nil); st != 204 {
		t.Fatalf("revoke: %d", st)
	}
	send("e2e-4", map[string]map[string]string{bob.DeviceID: entry("1"), bob2.DeviceID: entry("2"), alice2.DeviceID: entry("3")})
	if e := a.expect("error"); e.num("status") != 409 {
		t.Fatalf("envelope naming a revoked device: %v", e)
	}
}
