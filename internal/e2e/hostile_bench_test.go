package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// BenchmarkLatencyBesideHostileClients measures what ordinary users feel
// while hostile clients run beside them: a socket flooding garbage frames, a
// socket that never reads while messages pour into it, and a flood of sends
// over the rate limit. Compare the quiet and hostile sub-benchmarks:
//
//	go test -run '^$' -bench LatencyBeside -benchtime 1000x ./internal/e2e
func BenchmarkLatencyBesideHostileClients(b *testing.B) {
	for _, hostile := range []bool{false, true} {
		b.Run(fmt.Sprintf("hostile=%v", hostile), func(b *testing.B) { benchBeside(b, hostile) })
	}
}

func benchBeside(b *testing.B, hostile bool) {
	// The default message rate limit, as a real server runs.
	srv := servertest.Start(b, func(c *server.Config) { c.MessageRate = 100 })
	// Ordinary senders take turns, each well under the limit.
	bob := newAccount(b, srv, "bob")
	r := dial(b, srv, bob.Token)
	const turns = 16
	senders, convs := make([]*sock, turns), make([]string, turns)
	for i := range senders {
		s := newAccount(b, srv, "sender")
		convs[i], senders[i] = direct(b, srv, s, bob), dial(b, srv, s.Token)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if hostile {
		mallory, victim := newAccount(b, srv, "mallory"), newAccount(b, srv, "victim")
		mconv := direct(b, srv, mallory, victim)
		// A reader that never reads, with messages pouring into it.
		deaf, _, err := websocket.Dial(ctx, srv.WSURL+"?token="+victim.Token, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer deaf.CloseNow()
		floods := []func(ws *websocket.Conn, i int) []byte{
			func(_ *websocket.Conn, i int) []byte { return []byte(fmt.Sprintf(`{"type":"nonsense-%d"}`, i)) },
			func(_ *websocket.Conn, i int) []byte { return []byte(strings.Repeat("[", 3000)) },
			func(_ *websocket.Conn, i int) []byte {
				return []byte(fmt.Sprintf(`{"type":"send_message","message_id":"m%d","conversation_id":%q,"content":%q}`, i, mconv, strings.Repeat("x", 4000)))
			},
		}
		for _, flood := range floods {
			ws, _, err := websocket.Dial(ctx, srv.WSURL+"?token="+mallory.Token, nil)
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(2)
			go func() { // drain what the server answers, as a real client would
				defer wg.Done()
				for {
					if _, _, err := ws.Read(ctx); err != nil {
						return
					}
				}
			}()
			go func(flood func(*websocket.Conn, int) []byte) {
				defer wg.Done()
				defer ws.CloseNow()
				for i := 0; ctx.Err() == nil; i++ {
					if ws.Write(ctx, websocket.MessageText, flood(ws, i)) != nil {
						return
					}
				}
			}(flood)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, conv := senders[i%turns], convs[i%turns]
		start := time.Now()
		a.send(sendText(conv, fmt.Sprintf("q-%d", i), "hello"))
		a.expect("ack", "conversation_updated", "presence")
		r.expect("new_message", "conversation_updated", "presence", "pong")
		lat = append(lat, time.Since(start))
		if i%100 == 0 {
			r.send(`{"type":"ping"}`) // the reader only reads: keep it alive past two heartbeats
		}
	}
	b.StopTimer()
	stop()
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
