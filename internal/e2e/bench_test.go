package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// BenchmarkSendAcked measures messages per second acked by one node (store
// commit included) through real sockets on loopback, with group commit on
// and off. Each of the senders pipelines up to window messages.
//
//	go test -run '^$' -bench SendAcked -benchtime 20000x ./internal/e2e
func BenchmarkSendAcked(b *testing.B) {
	for _, gc := range []bool{true, false} {
		for _, senders := range []int{1, 50} {
			name := fmt.Sprintf("group-commit=%v/senders=%d", gc, senders)
			b.Run(name, func(b *testing.B) { benchSend(b, gc, senders, 32) })
		}
	}
}

func benchSend(b *testing.B, groupCommit bool, senders, window int) {
	srv := servertest.Start(b, func(c *server.Config) { c.GroupCommit, c.FrameRate = groupCommit, 0 })
	receiver := newAccount(b, srv, "recv")
	type sender struct {
		s    *sock
		conv string
	}
	ss := make([]sender, senders)
	for i := range ss {
		a := newAccount(b, srv, "send")
		ss[i] = sender{s: dial(b, srv, a.Token), conv: direct(b, srv, a, receiver)}
	}
	per := max(1, b.N/senders)
	lat := make([][]time.Duration, senders)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range ss {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := ss[i]
			sentAt := make(map[string]time.Time, per)
			sent, acked := 0, 0
			for acked < per {
				for sent < per && sent-acked < window {
					id := fmt.Sprintf("b%d-%d", i, sent)
					sentAt[id] = time.Now()
					s.s.send(sendText(s.conv, id, "benchmark message"))
					sent++
				}
				ack := s.s.expect("ack", "conversation_updated")
				lat[i] = append(lat[i], time.Since(sentAt[ack.str("message_id")]))
				acked++
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "ack-p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "ack-p99-ms")
}
