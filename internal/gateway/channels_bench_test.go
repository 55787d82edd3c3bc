//go:build unix

package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/metrics"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// BenchmarkChannelFanout sends into a 2,000-member group whose members all
// have a socket on this node, delivered directly (one publish per member)
// and fan-out-on-read (one publish per message), over the in-process bus and
// over NATS (an embedded server, so its CPU is counted too). Messages are
// stored for real (SQLite, group commit) by 8 concurrent senders; each
// socket's writer takes its frames and drops them. It reports bus publishes
// per message, process CPU per message, and deliveries (frames queued to
// sockets) per second.
//
//	go test -run '^$' -bench ChannelFanout -benchtime 200x ./internal/gateway
func BenchmarkChannelFanout(b *testing.B) {
	const members = 2000
	st := benchChannelStore(b, members)
	for _, bus := range []string{"local", "nats"} {
		for _, route := range []string{"direct", "channel"} {
			b.Run(fmt.Sprintf("bus=%s/route=%s", bus, route), func(b *testing.B) {
				benchChannelFanout(b, st, bus, route == "channel")
			})
		}
	}
}

type benchChannel struct {
	store chat.Store
	conv  string
	users []chat.Session
}

// benchChannelStore makes the users and the group once: 2,000 users cost
// 2,000 transactions.
func benchChannelStore(b *testing.B, members int) *benchChannel {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	bc := &benchChannel{store: st}
	conv := chat.Conversation{ID: "bench-channel", Type: chat.TypeGroup, Name: "bench", CreatedAt: 1, UpdatedAt: 1}
	for i := 0; i < members; i++ {
		u := chat.User{ID: fmt.Sprintf("01BENCHUSER%015d", i), Username: fmt.Sprintf("bench%05d", i), CreatedAt: 1}
		if err := st.CreateUser(ctx, u, []byte("x")); err != nil {
			b.Fatal(err)
		}
		bc.users = append(bc.users, chat.Session{UserID: u.ID, DeviceID: "dev-" + u.ID})
		role := chat.RoleMember
		if i == 0 {
			role = chat.RoleAdmin
		}
		conv.Members = append(conv.Members, chat.Member{UserID: u.ID, Role: role, JoinedAt: 1})
	}
	if err := st.CreateGroup(ctx, conv); err != nil {
		b.Fatal(err)
	}
	bc.conv = conv.ID
	return bc
}

func benchChannelFanout(b *testing.B, bc *benchChannel, busName string, channel bool) {
	ctx := context.Background()
	var bus chat.Bus = local.New()
	if busName == "nats" {
		ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
		if err != nil {
			b.Fatal(err)
		}
		ns.Start()
		defer ns.Shutdown()
		if !ns.ReadyForConnections(10 * time.Second) {
			b.Fatal("nats did not start")
		}
		nb, err := natsbus.Open(ctx, []string{ns.ClientURL()}, natsbus.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer nb.Close()
		bus = nb
	}
	cb := &benchCountingBus{Bus: bus}
	directMax := 1 << 30
	if channel {
		directMax = 256
	}
	svc := chat.NewService(chat.Config{FanoutDirectMax: directMax, MaxGroupMembers: 1 << 30},
		chat.Deps{Store: bc.store, Bus: cb, Hasher: security.NewBcrypt(4)})
	defer svc.Close()
	g := New(DefaultConfig(), svc, metrics.New(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	defer g.chans.close()

	var taken atomic.Int64
	for _, sess := range bc.users {
		registerDraining(b, g, sess, ctx, &taken)
	}
	if busName == "nats" {
		time.Sleep(200 * time.Millisecond) // subscriptions reach the server
	}
	// Warm up: the first message loads the member set (channel) and lets
	// presence announcements pass.
	if _, err := svc.Send(ctx, bc.users[0], chat.SendRequest{ClientID: fmt.Sprint("warm-", time.Now().UnixNano()), ConversationID: bc.conv, Content: "warm"}); err != nil {
		b.Fatal(err)
	}
	want := int64(len(bc.users) - 1)
	waitTaken(&taken, want)
	taken.Store(0)
	cb.reset()

	const senders = 8
	text := "the quick brown fox jumps over the lazy dog; a chat line of ordinary length"
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	run := time.Now().UnixNano()
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(from chat.Session) {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := svc.Send(ctx, from, chat.SendRequest{ClientID: fmt.Sprint(run, "-", i), ConversationID: bc.conv, Content: text}); err != nil {
					b.Error(err)
					return
				}
			}
		}(bc.users[s])
	}
	wg.Wait()
	want = int64(b.N) * int64(len(bc.users)-1)
	if got := waitTaken(&taken, want); got != want {
		b.Fatalf("%d of %d deliveries arrived", got, want)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cb.messages.Load())/float64(b.N), "publishes/msg")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/msg")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// benchCountingBus counts the publishes of new messages.
type benchCountingBus struct {
	chat.Bus
	messages atomic.Int64
}

func (b *benchCountingBus) Publish(ctx context.Context, topic string, ev *chat.Event) error {
	if ev.Kind == chat.EventMessage {
		b.messages.Add(1)
	}
	return b.Bus.Publish(ctx, topic, ev)
}

func (b *benchCountingBus) reset() { b.messages.Store(0) }

// waitTaken waits (up to a minute) until n frames were taken, and returns
// how many were.
func waitTaken(taken *atomic.Int64, n int64) int64 {
	for deadline := time.Now().Add(time.Minute); taken.Load() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return taken.Load()
}
