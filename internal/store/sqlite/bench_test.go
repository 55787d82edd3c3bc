package sqlite_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// benchGroup opens a store in a temp dir (on the same disk as the data dir
// would be) with a group of members users, and returns it.
func benchGroup(b *testing.B, members int) (*sqlite.Store, chat.Conversation) {
	b.Helper()
	ctx := context.Background()
	s, _ := openTemp(b, sqlite.Options{})
	b.Cleanup(func() { s.Close() })
	now := time.Now().UnixMilli()
	g := chat.Conversation{ID: "bench-group", Type: chat.TypeGroup, Name: "bench", CreatedAt: now, UpdatedAt: now}
	for i := range members {
		u := chat.User{ID: fmt.Sprintf("user-%03d", i), Username: fmt.Sprintf("user%03d", i), CreatedAt: now}
		if err := s.CreateUser(ctx, u, []byte("h")); err != nil {
			b.Fatal(err)
		}
		role := chat.RoleMember
		if i == 0 {
			role = chat.RoleAdmin
		}
		g.Members = append(g.Members, chat.Member{UserID: u.ID, Role: role, JoinedAt: now})
	}
	if err := s.CreateGroup(ctx, g); err != nil {
		b.Fatal(err)
	}
	return s, g
}

func benchMessage(g chat.Conversation, ids *chat.IDGen, n int) chat.Message {
	now := time.Now()
	sender := g.Members[n%len(g.Members)].UserID
	return chat.Message{
		ID: ids.New(now), ClientID: fmt.Sprintf("client-%d", n), ConversationID: g.ID,
		SenderID: sender, SenderDeviceID: "device-" + sender, ContentType: chat.ContentText,
		Content:   "The quick brown fox jumps over the lazy dog, a typical chat message of some length.",
		Timestamp: now.UnixMilli(),
	}
}

// BenchmarkAppendBatch measures group commit: one transaction (one fsync)
// per batch. msgs/s is the figure that matters.
func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchAppend(b, size, 8) })
	}
	// The largest default group: every message reads 256 members.
	b.Run("batch=128/members=256", func(b *testing.B) { benchAppend(b, 128, 256) })
}

func benchAppend(b *testing.B, size, members int) {
	s, g := benchGroup(b, members)
	ctx := context.Background()
	var ids chat.IDGen
	n := 0
	batch := make([]chat.Message, size)
	for b.Loop() {
		for i := range batch {
			batch[i] = benchMessage(g, &ids, n)
			n++
		}
		res, err := s.AppendBatch(ctx, batch)
		if err != nil || res[size-1].Err != nil {
			b.Fatalf("AppendBatch: %v", err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMessages pages through the history of a conversation of 20,000
// messages, 50 at a time.
func BenchmarkMessages(b *testing.B) {
	const total = 20000
	s, g := benchGroup(b, 8)
	ctx := context.Background()
	var ids chat.IDGen
	for n := 0; n < total; {
		batch := make([]chat.Message, 500)
		for i := range batch {
			batch[i] = benchMessage(g, &ids, n)
			n++
		}
		if _, err := s.AppendBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	cases := []struct {
		name string
		page func(i int) chat.Page
	}{
		{"newest", func(int) chat.Page { return chat.Page{Limit: 50} }},
		{"before", func(i int) chat.Page { return chat.Page{Before: int64(51 + (i*7919)%(total-50)), Limit: 50} }},
		{"forward", func(i int) chat.Page {
			return chat.Page{Forward: true, After: int64((i * 7919) % (total - 50)), Limit: 50}
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				msgs, _, err := s.Messages(ctx, g.ID, tc.page(i))
				if err != nil || len(msgs) != 50 {
					b.Fatalf("Messages: %d, %v", len(msgs), err)
				}
				i++
			}
			b.ReportMetric(float64(i*50)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
	b.Run("parallel-newest", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.Messages(ctx, g.ID, chat.Page{Limit: 50}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchPairs opens a store with pairs direct conversations (2*pairs users),
// the shape of 1:1 chat at scale: every message of a batch lands in its own
// conversation and so dirties its own pages.
func benchPairs(b *testing.B, pairs int) (*sqlite.Store, []chat.Conversation) {
	b.Helper()
	ctx := context.Background()
	s, _ := openTemp(b, sqlite.Options{})
	b.Cleanup(func() { s.Close() })
	now := time.Now().UnixMilli()
	convs := make([]chat.Conversation, pairs)
	for i := range pairs {
		var ms []chat.Member
		for _, side := range []string{"a", "b"} {
			u := chat.User{ID: fmt.Sprintf("u%05d%s", i, side), Username: fmt.Sprintf("u%05d%s", i, side), CreatedAt: now}
			if err := s.CreateUser(ctx, u, []byte("h")); err != nil {
				b.Fatal(err)
			}
			ms = append(ms, chat.Member{UserID: u.ID, Role: chat.RoleMember, JoinedAt: now})
		}
		c := chat.Conversation{ID: fmt.Sprintf("pair-%05d", i), Type: chat.TypeDirect, Members: ms, CreatedAt: now, UpdatedAt: now}
		got, _, err := s.DirectConversation(ctx, c)
		if err != nil {
			b.Fatal(err)
		}
		convs[i] = got
	}
	return s, convs
}

// BenchmarkAppendSpread is group commit as 1:1 chat sees it: 1,000 direct
// conversations, each message of a batch in a different one, batches of the
// sizes the commit loop sees from light to heavy load.
func BenchmarkAppendSpread(b *testing.B) {
	for _, size := range []int{1, 4, 16, 64, 256} {
		b.Run(fmt.Sprintf("convs=1000/batch=%d", size), func(b *testing.B) {
			s, convs := benchPairs(b, 1000)
			ctx := context.Background()
			var ids chat.IDGen
			n := 0
			batch := make([]chat.Message, size)
			cpu0 := processCPU()
			for b.Loop() {
				for i := range batch {
					c := convs[n%len(convs)]
					m := benchMessage(c, &ids, n)
					m.SenderID = c.Members[(n/len(convs))%2].UserID
					batch[i] = m
					n++
				}
				res, err := s.AppendBatch(ctx, batch)
				if err != nil || res[size-1].Err != nil {
					b.Fatalf("AppendBatch: %v %v", err, res[size-1].Err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(n), "cpu-µs/msg")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used: the
// store's cost per message includes the kernel's work for its writes and
// fsyncs.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
