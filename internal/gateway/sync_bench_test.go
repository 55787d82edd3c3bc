package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// BenchmarkSync measures one complete sync over a real socket: a device
// that missed 50 messages in each of 20 conversations sends sync with its
// cursors and reads the 1,000 new_message frames and sync_complete. It is the
// server's sync query (cursors, then a forward page per conversation), the
// encoding of every frame and the socket writes.
//
//	go test -run '^$' -bench Sync -benchtime 200x ./internal/gateway
func BenchmarkSync(b *testing.B) {
	const convs, missed = 20, 50
	srv := servertest.Start(b)
	me := benchAccount(b, srv.URL, "syncer")
	peer := benchAccount(b, srv.URL, "peer0")
	cursors := map[string]int64{}
	ctx := context.Background()
	ps := benchDial(b, srv.WSURL, peer.Token)
	for i := range convs {
		other := peer
		if i > 0 {
			other = benchAccount(b, srv.URL, fmt.Sprintf("peer%d", i))
		}
		var conv struct {
			ID string `json:"conversation_id"`
		}
		benchPost(b, srv.URL+"/api/v1/conversations", me.Token, map[string]string{"type": "direct", "user_id": other.UserID}, &conv)
		cursors[conv.ID] = 0
		sender := ps
		if i > 0 {
			sender = benchDial(b, srv.WSURL, other.Token)
		}
		for j := range missed {
			frame := fmt.Sprintf(`{"type":"send_message","message_id":"m%d-%d","conversation_id":%q,"content":"the quick brown fox jumps over the lazy dog"}`, i, j, conv.ID)
			if err := sender.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
				b.Fatal(err)
			}
			benchExpect(b, sender, `"type":"ack"`)
		}
	}
	ws := benchDial(b, srv.WSURL, me.Token)
	req, _ := json.Marshal(map[string]any{"type": "sync", "cursors": cursors})
	for b.Loop() {
		if err := ws.Write(ctx, websocket.MessageText, req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(data[:min(len(data), 40)], []byte(`"sync_complete"`)) {
				break
			}
			n++
		}
		if n != convs*missed {
			b.Fatalf("sync sent %d messages, want %d", n, convs*missed)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "syncs/s")
}

type benchAcct struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
}

func benchAccount(b *testing.B, url, name string) benchAcct {
	b.Helper()
	body := map[string]string{"username": name, "password": "benchmark-password"}
	benchPost(b, url+"/api/v1/auth/register", "", body, nil)
	var a benchAcct
	benchPost(b, url+"/api/v1/auth/login", "", body, &a)
	return a
}

func benchPost(b *testing.B, url, token string, in, out any) {
	b.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("POST %s: %d", url, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDial(b *testing.B, wsURL, token string) *websocket.Conn {
	b.Helper()
	ws, _, err := websocket.Dial(context.Background(), wsURL+"?token="+token, nil)
	if err != nil {
		b.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	b.Cleanup(func() { ws.CloseNow() })
	benchExpect(b, ws, `"type":"ready"`)
	return ws
}

// benchExpect reads frames until one contains want.
func benchExpect(b *testing.B, ws *websocket.Conn, want string) {
	b.Helper()
	for {
		_, data, err := ws.Read(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(string(data), want) {
			return
		}
	}
}
