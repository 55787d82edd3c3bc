package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// powerReceipts moves one member's read watermark while a power-loss cycle
// streams messages: one device sends "read up to everything" (the server
// caps it at the conversation's last seq) every few milliseconds, and a
// second device of the same user records the highest watermark the server
// announced. The server stores a watermark before it announces it, so after
// the cut the stored read_seq must be at least the highest one announced.
type powerReceipts struct {
	reader, echo account // two devices of one member

	mu        sync.Mutex
	conv      string
	announced int64 // highest read_seq announced for conv
}

// run sends and listens until stop is closed or the server goes away.
func (r *powerReceipts) run(wsURL string, stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	dial := func(a account) *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + a.Token}}})
		if err != nil {
			return nil
		}
		return ws
	}
	send, echo := dial(r.reader), dial(r.echo)
	if send == nil || echo == nil {
		return
	}
	defer send.CloseNow()
	defer echo.CloseNow()
	r.mu.Lock()
	conv := r.conv
	r.mu.Unlock()
	go func() {
		for {
			_, data, err := echo.Read(ctx)
			if err != nil {
				return
			}
			var f struct {
				Type           string `json:"type"`
				ConversationID string `json:"conversation_id"`
				UserID         string `json:"user_id"`
				Status         string `json:"status"`
				Seq            int64  `json:"seq"`
			}
			if json.Unmarshal(data, &f) != nil || f.Type != "message_status" || f.Status != "read" {
				continue
			}
			if f.ConversationID == conv && f.UserID == r.reader.UserID {
				r.mu.Lock()
				r.announced = max(r.announced, f.Seq)
				r.mu.Unlock()
			}
		}
	}()
	frame := []byte(`{"type":"message_status","conversation_id":"` + conv + `","seq":1000000000,"status":"read"}`)
	for {
		if send.Write(ctx, websocket.MessageText, frame) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// verify checks the stored watermark against the announced one and
// returns it.
func (r *powerReceipts) verify(t *testing.T, srv *servertest.Server) int64 {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var c struct {
		Members []struct {
			UserID  string `json:"user_id"`
			ReadSeq int64  `json:"read_seq"`
		} `json:"members"`
	}
	if code := api(t, srv, "GET", "/api/v1/conversations/"+r.conv, r.reader.Token, nil, &c); code != http.StatusOK {
		t.Fatalf("GET conversation after the power cut: %d", code)
	}
	for _, m := range c.Members {
		if m.UserID == r.reader.UserID {
			if m.ReadSeq < r.announced {
				t.Errorf("read watermark after the power cut: %d, but %d had been announced", m.ReadSeq, r.announced)
			}
			return r.announced
		}
	}
	t.Fatalf("%s is not a member of %s", r.reader.UserID, r.conv)
	return 0
}
