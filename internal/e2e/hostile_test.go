package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// A hostile client never hurts the server or other users.
func TestHostileClients(t *testing.T) {
	srv := servertest.Start(t)
	alice, bob, mallory := newAccount(t, srv, "alice"), newAccount(t, srv, "bob"), newAccount(t, srv, "mallory")
	conv := direct(t, srv, alice, bob)
	a, b := dial(t, srv, alice.Token), dial(t, srv, bob.Token)
	roundTrip := func(i int) {
		t.Helper()
		id := fmt.Sprintf("ok-%d-%d", i, time.Now().UnixNano())
		a.send(sendText(conv, id, "still fine"))
		a.expect("ack")
		if m := b.expect("new_message"); m.str("client_message_id") != id {
			t.Fatalf("bob got %v", m)
		}
	}

	t.Run("oversized frame closes only that socket", func(t *testing.T) {
		m := dial(t, srv, mallory.Token)
		m.send(`{"type":"ping","pad":"` + strings.Repeat("x", 2<<20) + `"}`)
		if code := m.closeStatus(5 * time.Second); code != websocket.StatusMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
		roundTrip(1)
	})
	t.Run("garbage frames get errors and the socket stays open", func(t *testing.T) {
		m := dial(t, srv, mallory.Token)
		const n = 800 // past the per-socket frame rate (200/s, burst 400) the reader waits
		for i := 0; i < n; i++ {
			switch i % 4 {
			case 0:
				m.send(fmt.Sprintf(`{"type":"unknown-%d"}`, i))
			case 1:
				m.send(strings.Repeat("[", 5000) + strings.Repeat("]", 5000))
			case 2:
				m.send([]byte{'{', '"', 't', 0xff, 0xfe, '"', '}'})
			case 3:
				m.send(`{"type":"send_message","message_id":7}`)
			}
		}
		for i := 0; i < n; i++ {
			if e := m.expect("error"); e.num("status") != 400 {
				t.Fatalf("frame %d answered %v, want 400", i, e)
			}
		}
		m.send(`{"type":"ping"}`)
		m.expect("pong")
		roundTrip(2)
	})
	t.Run("binary frames are refused with 400", func(t *testing.T) {
		m := dial(t, srv, mallory.Token)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.ws.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if e := m.expect("error"); e.num("status") != 400 {
			t.Fatalf("binary frame: %v", e)
		}
	})
	t.Run("a flood of messages is rate limited, not stored", func(t *testing.T) {
		limited := servertest.Start(t, func(c *server.Config) { c.MessageRate = 10 })
		x, y := newAccount(t, limited, "flooder"), newAccount(t, limited, "victim")
		c := direct(t, limited, x, y)
		s := dial(t, limited, x.Token)
		for i := 0; i < 200; i++ {
			s.send(sendText(c, fmt.Sprintf("flood-%d", i), "spam"))
		}
		acks, limitedN := 0, 0
		for i := 0; i < 200; i++ {
			switch f := s.next(10 * time.Second); f.str("type") {
			case "ack":
				acks++
			case "error":
				if f.num("status") == 429 {
					limitedN++
				}
			}
		}
		if acks != 10 || limitedN != 190 {
			t.Fatalf("200 sends at 10/min: %d acked, %d limited", acks, limitedN)
		}
	})
	roundTrip(3)
}
