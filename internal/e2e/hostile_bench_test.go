package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	users := newOrdinaryUsers(b, srv)
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
		floods := []func(i int) []byte{
			func(i int) []byte { return []byte(fmt.Sprintf(`{"type":"nonsense-%d"}`, i)) },
			func(i int) []byte { return []byte(strings.Repeat("[", 3000)) },
			func(i int) []byte {
				return []byte(fmt.Sprintf(`{"type":"send_message","message_id":"m%d","conversation_id":%q,"content":%q}`, i, mconv, strings.Repeat("x", 4000)))
			},
		}
		for _, flood := range floods {
			floodSocket(ctx, b, &wg, srv.WSURL+"?token="+mallory.Token, flood, nil)
		}
	}
	users.measure(b)
	stop()
	wg.Wait()
}

// ordinaryUsers is the traffic whose latency the hostile benchmarks
// measure: senders taking turns, each well under the message rate, writing
// to bob, who reads.
type ordinaryUsers struct {
	bob     string // the reader's user id
	reader  *sock
	senders []*sock
	convs   []string
}

func newOrdinaryUsers(b *testing.B, srv *servertest.Server) *ordinaryUsers {
	const turns = 16
	bob := newAccount(b, srv, "bob")
	u := &ordinaryUsers{bob: bob.UserID, reader: dial(b, srv, bob.Token), senders: make([]*sock, turns), convs: make([]string, turns)}
	for i := range u.senders {
		s := newAccount(b, srv, "sender")
		u.convs[i], u.senders[i] = direct(b, srv, s, bob), dial(b, srv, s.Token)
	}
	return u
}

// measure times b.N sends from the ack's request to bob's new_message and
// reports their p50 and p99.
func (u *ordinaryUsers) measure(b *testing.B) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, conv := u.senders[i%len(u.senders)], u.convs[i%len(u.convs)]
		start := time.Now()
		a.send(sendText(conv, fmt.Sprintf("q-%d", i), "hello"))
		a.expect("ack", "conversation_updated", "presence")
		u.reader.expect("new_message", "conversation_updated", "presence", "pong")
		lat = append(lat, time.Since(start))
		if i%100 == 0 {
			u.reader.send(`{"type":"ping"}`) // the reader only reads: keep it alive past two heartbeats
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// floodSocket dials url and writes frame(0), frame(1), ... until ctx ends,
// draining what the server answers as a real client would; sent counts the
// frames written, when not nil.
func floodSocket(ctx context.Context, b *testing.B, wg *sync.WaitGroup, url string, frame func(i int) []byte, sent *atomic.Int64) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	wg.Go(func() {
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		defer ws.CloseNow()
		for i := 0; ctx.Err() == nil; i++ {
			if ws.Write(ctx, websocket.MessageText, frame(i)) != nil {
				return
			}
			if sent != nil {
				sent.Add(1)
			}
		}
	})
}
