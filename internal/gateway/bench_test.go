package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/metrics"
)

// Hot-path benchmarks of the gateway; compare runs with benchstat:
//
//	go test -run '^$' -bench . -count 10 ./internal/gateway > new.txt

// benchGateway is a gateway with a hub and an in-process bus, no service.
func benchGateway() *Gateway {
	g := &Gateway{cfg: DefaultConfig(), bus: local.New(), log: slog.New(slog.DiscardHandler), metrics: metrics.New(prometheus.NewRegistry())}
	g.hub = newHub(g)
	return g
}

// registerDraining registers a socket whose writer takes every frame and
// counts its bytes in taken (the frames are then dropped).
func registerDraining(b *testing.B, g *Gateway, sess chat.Session, ctx context.Context, taken *atomic.Int64) {
	b.Helper()
	c := &conn{g: g, sess: sess, ctx: ctx}
	c.q = newOutQueue(1<<20, func() {
		for {
			f := c.q.take(nil)
			if f == nil {
				return
			}
			taken.Add(int64(len(f)))
		}
	})
	if err := g.hub.register(c); err != nil {
		b.Fatal(err)
	}
	c.q.start()
}

// BenchmarkHubFanout publishes one message to the topics of a group's
// members, as the service's publisher does, and lets every socket's writer
// take its frame (the frames are then dropped): hub lookup, the shared
// encoding, queueing and the writer's wake-up, per delivery.
func BenchmarkHubFanout(b *testing.B) {
	for _, members := range []int{2, 256} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			g := benchGateway()
			var taken atomic.Int64
			users := make([]string, members)
			for i := range users {
				users[i] = fmt.Sprintf("user-%03d", i)
				registerDraining(b, g, chat.Session{UserID: users[i], DeviceID: "dev-" + users[i]}, context.Background(), &taken)
			}
			ctx := context.Background()
			n := 0
			for b.Loop() {
				m := &chat.Message{ID: "01JDQ80AZ3C5E7G9J1K3M5P7R9", ClientID: fmt.Sprintf("c-%d", n), ConversationID: "conv",
					Seq: int64(n + 1), SenderID: users[0], SenderDeviceID: "dev-" + users[0], ContentType: chat.ContentText,
					Content: "the quick brown fox jumps over the lazy dog; a chat line of ordinary length", Timestamp: time.Now().UnixMilli()}
				ev := &chat.Event{Kind: chat.EventMessage, ExceptDevice: m.SenderDeviceID, Message: m}
				for _, u := range users {
					_ = g.bus.Publish(ctx, chat.UserTopic(u), ev)
				}
				n++
			}
			want := int64(n * (members - 1))
			for deadline := time.Now().Add(10 * time.Second); taken.Load() < want && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// wsPair returns the server side of a real WebSocket over loopback, accepted
// the way serveWS does, and a client that reads and drops every frame.
func wsPair(b *testing.B) (*conn, *websocket.Conn) {
	b.Helper()
	got := make(chan *conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &conn{}
		ws, err := websocket.Accept(&smallHijacker{ResponseWriter: w, c: c}, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			b.Error(err)
			return
		}
		c.rd.Reset(c.src)
		c.ws = ws
		got <- c
	}))
	b.Cleanup(srv.Close)
	client, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	client.SetReadLimit(-1)
	go func() {
		for {
			_, r, err := client.Reader(context.Background())
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, r)
		}
	}()
	c := <-got
	b.Cleanup(func() { client.CloseNow(); c.ws.CloseNow() })
	return c, client
}

// BenchmarkSocketWrite writes batches of new_message-sized frames to a real
// socket: one library Write (and flush) per frame, as the gateway did, and
// the writer's batched framing (one write per batch).
func BenchmarkSocketWrite(b *testing.B) {
	frame := []byte(`{"type":"new_message","message_id":"01JDQ80AZ3C5E7G9J1K3M5P7R9","client_message_id":"w0s12-3f-1764180000123456789","conversation_id":"01JDQ7ZK8X5V2N4M6P8R0T2W4Y","seq":123456,"sender_id":"01JDQ7YB2D4F6H8K0M2P4R6T8V","sender_device_id":"01JDQ7YB9X1Z3B5D7F9H1K3M5P","content":"1764180000123456789 the quick brown fox jumps over the lazy dog","content_type":"text","timestamp":1764180000123}`)
	for _, batch := range []int{1, 16} {
		frames := make([][]byte, batch)
		for i := range frames {
			frames[i] = frame
		}
		b.Run(fmt.Sprintf("library/batch=%d", batch), func(b *testing.B) {
			c, _ := wsPair(b)
			b.SetBytes(int64(batch * len(frame)))
			for b.Loop() {
				for _, f := range frames {
					if err := c.ws.Write(context.Background(), websocket.MessageText, f); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("batched/batch=%d", batch), func(b *testing.B) {
			c, _ := wsPair(b)
			b.SetBytes(int64(batch * len(frame)))
			for b.Loop() {
				if err := c.writeFrames(frames); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
