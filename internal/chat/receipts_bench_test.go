package chat_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// countingStore counts the watermark transactions and rows reaching the real store.
type countingStore struct {
	chat.Store
	txs, rows atomic.Int64
}

func (c *countingStore) UpdateWatermarks(ctx context.Context, w []chat.Watermark) ([]chat.Watermark, error) {
	c.txs.Add(1)
	c.rows.Add(int64(len(w)))
	return c.Store.UpdateWatermarks(ctx, w)
}

// BenchmarkReceipts measures what receipts cost the store: members of one
// group report delivered and read for every message as fast as they can;
// coalescing turns them into far fewer transactions (and rows) than receipts.
//
//	go test -run '^$' -bench Receipts -benchtime 20000x ./internal/chat
func BenchmarkReceipts(b *testing.B) {
	for _, members := range []int{2, 16, 64} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) { benchReceipts(b, members) })
	}
}

func benchReceipts(b *testing.B, members int) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	svc := chat.NewService(chat.Config{}, chat.Deps{Store: cs, Bus: local.New(), Hasher: security.NewBcrypt(4)})
	defer svc.Close()
	sessions := make([]chat.Session, members)
	ids := make([]string, members)
	for i := range sessions {
		u, err := svc.Register(ctx, fmt.Sprintf("member%03d", i), "password1", "")
		if err != nil {
			b.Fatal(err)
		}
		res, err := svc.Login(ctx, u.Username, "password1", "bench", "")
		if err != nil {
			b.Fatal(err)
		}
		sessions[i], ids[i] = res.Session, u.ID
	}
	conv, err := svc.CreateGroup(ctx, sessions[0], "bench", ids[1:])
	if err != nil {
		b.Fatal(err)
	}
	const msgs = 500
	for i := 0; i < msgs; i++ {
		if _, err := svc.Send(ctx, sessions[0], chat.SendRequest{ClientID: fmt.Sprint(i), ConversationID: conv.ID, Content: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	cs.txs.Store(0)
	cs.rows.Store(0)
	per := max(1, b.N/members)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for m := range sessions {
		wg.Add(1)
		go func(sess chat.Session) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				status := chat.StatusDelivered
				if i%2 == 1 {
					status = chat.StatusRead
				}
				if err := svc.MarkStatus(ctx, sess, conv.ID, int64(i/2%msgs+1), status); err != nil {
					b.Error(err)
					return
				}
			}
		}(sessions[m])
	}
	wg.Wait()
	// Let the coalescer write what is queued before reading the counters.
	deadline := time.Now().Add(10 * time.Second)
	for last := int64(-1); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n := cs.rows.Load()
		if n == last {
			break
		}
		last = n
	}
	elapsed := time.Since(start)
	b.StopTimer()
	receipts := float64(per * members)
	b.ReportMetric(receipts/elapsed.Seconds(), "receipts/s")
	b.ReportMetric(float64(cs.txs.Load())/elapsed.Seconds(), "store-txs/s")
	b.ReportMetric(float64(cs.rows.Load())/elapsed.Seconds(), "rows/s")
	b.ReportMetric(receipts/float64(max(1, cs.txs.Load())), "receipts/tx")
}
