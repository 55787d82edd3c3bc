package security

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBucketsTakeRefund(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBuckets(3, time.Minute, 0, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if ok, _ := b.Take("alice"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	ok, wait := b.Take("alice")
	if ok || wait <= 0 || wait > 20*time.Second {
		t.Fatalf("4th: ok=%v wait=%v, want refused with a wait of at most 20s", ok, wait)
	}
	b.Refund("alice")
	if ok, _ := b.Take("alice"); !ok {
		t.Fatal("a refunded token is not there again")
	}
	for i := 0; i < 10; i++ {
		b.Refund("bob") // refunds never go above the burst
	}
	for i := 0; i < 3; i++ {
		b.Take("bob")
	}
	if ok, _ := b.Take("bob"); ok {
		t.Fatal("refunds raised bob's bucket above its burst")
	}
	now = now.Add(21 * time.Second)
	if ok, _ := b.Take("alice"); !ok {
		t.Fatal("no token after 21 s at 3 per minute")
	}
	var none *Buckets
	if ok, _ := none.Take("x"); !ok || NewBuckets(0, time.Minute, 0, nil) != nil {
		t.Fatal("a nil Buckets must be unlimited")
	}
}

// Parallel takers never get more than the burst between them.
func TestBucketsParallel(t *testing.T) {
	b := NewBuckets(10, time.Hour, 0, nil)
	var got atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := b.Take("victim"); ok {
				got.Add(1)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 10 {
		t.Fatalf("%d of 60 parallel takes passed, want 10", got.Load())
	}
}

// Hostile keys cost a fixed amount each, and the set stays bounded.
func TestBucketsBounded(t *testing.T) {
	b := NewBuckets(10, time.Minute, 1000, nil)
	big := strings.Repeat("x", 1<<20)
	for i := 0; i < 50; i++ {
		b.Take(big[i:]) // stored as a 16-byte hash ([16]byte keys), never the text
	}
	for i := 0; i < 5000; i++ {
		b.Take(strconv.Itoa(i))
	}
	if n := b.Len(); n > 1000 || n < 500 {
		t.Fatalf("%d buckets held, want between 500 and the bound of 1000", n)
	}
}

// A success alone gets its token back; inside a burst it keeps it.
func TestBucketsRefundAlone(t *testing.T) {
	b := NewBuckets(2, time.Hour, 0, nil)
	for i := 0; i < 5; i++ {
		_, _, tk := b.TakeTicket("k")
		b.RefundAlone("k", tk)
	}
	_, _, tk := b.TakeTicket("k")
	b.Take("k") // another attempt in between
	b.RefundAlone("k", tk)
	if ok, _ := b.Take("k"); ok {
		t.Fatal("a success inside a burst gave its token back")
	}
}
