package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store/postgres"
)

// benchStore opens a store on a fresh schema with users user-000 ... and
// groups of members of them named group-0 ... (ngroups of them).
func benchStore(b *testing.B, maxConns int32, members, ngroups int) (*postgres.Store, []chat.Conversation) {
	b.Helper()
	ctx := context.Background()
	s, _ := openStore(b, postgres.Options{MaxConns: maxConns})
	now := time.Now().UnixMilli()
	var ms []chat.Member
	for i := range members {
		u := chat.User{ID: fmt.Sprintf("user-%03d", i), Username: fmt.Sprintf("user%03d", i), CreatedAt: now}
		if err := s.CreateUser(ctx, u, []byte("h")); err != nil {
			b.Fatal(err)
		}
		role := chat.RoleMember
		if i == 0 {
			role = chat.RoleAdmin
		}
		ms = append(ms, chat.Member{UserID: u.ID, Role: role, JoinedAt: now})
	}
	groups := make([]chat.Conversation, ngroups)
	for i := range groups {
		groups[i] = chat.Conversation{ID: fmt.Sprintf("group-%d", i), Type: chat.TypeGroup, Name: "bench",
			CreatedAt: now, UpdatedAt: now, Members: ms}
		if err := s.CreateGroup(ctx, groups[i]); err != nil {
			b.Fatal(err)
		}
	}
	return s, groups
}

// benchMessage is message n of a benchmark, from one of g's members.
func benchMessage(g chat.Conversation, ids *chat.IDGen, n int64) chat.Message {
	now := time.Now()
	sender := g.Members[n%int64(len(g.Members))].UserID
	return chat.Message{
		ID: ids.New(now), ClientID: fmt.Sprintf("client-%d", n), ConversationID: g.ID,
		SenderID: sender, SenderDeviceID: "device-" + sender, ContentType: chat.ContentText,
		Content:   "The quick brown fox jumps over the lazy dog, a typical chat message of some length.",
		Timestamp: now.UnixMilli(),
	}
}

// BenchmarkAppendBatch measures group commit from one goroutine: one
// transaction, one pipeline and one commit (WAL flush) per batch. msgs/s is
// the figure that matters.
func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchAppend(b, size, 8) })
	}
	// The largest default group: every batch reads 256 members.
	b.Run("batch=128/members=256", func(b *testing.B) { benchAppend(b, 128, 256) })
}

func benchAppend(b *testing.B, size, members int) {
	s, groups := benchStore(b, 2, members, 1)
	ctx := context.Background()
	var ids chat.IDGen
	var n int64
	batch := make([]chat.Message, size)
	for b.Loop() {
		for i := range batch {
			batch[i] = benchMessage(groups[0], &ids, n)
			n++
		}
		res, err := s.AppendBatch(ctx, batch)
		if err != nil || res[size-1].Err != nil {
			b.Fatalf("AppendBatch: %v", err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendConcurrent has 8 goroutines append batches at once, each on
// its own connection, as 8 parleyd nodes would: all to ONE conversation
// (every transaction waits for the conversation's row lock, held until the
// previous one committed) or each to its own conversation (no contention:
// commits overlap).
func BenchmarkAppendConcurrent(b *testing.B) {
	const writers = 8
	for _, size := range []int{1, 16} {
		b.Run(fmt.Sprintf("one-conversation/writers=%d/batch=%d", writers, size), func(b *testing.B) {
			benchConcurrent(b, writers, size, 1)
		})
		b.Run(fmt.Sprintf("own-conversations/writers=%d/batch=%d", writers, size), func(b *testing.B) {
			benchConcurrent(b, writers, size, writers)
		})
	}
}

func benchConcurrent(b *testing.B, writers, size, ngroups int) {
	s, groups := benchStore(b, int32(writers), 8, ngroups)
	ctx := context.Background()
	var ids chat.IDGen
	var next, msgs atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range writers {
		g := groups[w%len(groups)]
		wg.Go(func() {
			batch := make([]chat.Message, size)
			for next.Add(1) <= int64(b.N) {
				for i := range batch {
					batch[i] = benchMessage(g, &ids, msgs.Add(1))
				}
				res, err := s.AppendBatch(ctx, batch)
				if err != nil || res[size-1].Err != nil {
					b.Errorf("AppendBatch: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(msgs.Load())/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMessages pages through the history of a conversation of 20,000
// messages, 50 at a time.
func BenchmarkMessages(b *testing.B) {
	const total = 20000
	s, groups := benchStore(b, 4, 8, 1)
	g := groups[0]
	ctx := context.Background()
	var ids chat.IDGen
	for n := int64(0); n < total; {
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
}
