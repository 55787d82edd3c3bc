package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"time"
)

// Default backoff bounds.
const (
	DefaultBackoffMin = 250 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
)

// Backoff computes exponential backoff delays with full jitter: the delay
// before retry n (0-based) is uniform in [0, min(Max, Min·2^n)].
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a uniform value in [0, n); nil uses math/rand/v2.
	Rand func(n int64) int64
}

// Ceiling returns the upper bound of the delay for attempt n, without jitter.
func (b Backoff) Ceiling(attempt int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultBackoffMin
	}
	if hi <= 0 {
		hi = DefaultBackoffMax
	}
	if hi < lo {
		hi = lo
	}
	if attempt < 0 {
		attempt = 0
	}
	d := lo
	for i := 0; i < attempt; i++ {
		if d >= hi/2 {
			return hi
		}
		d *= 2
	}
	return min(d, hi)
}

// Delay returns the jittered delay for attempt n.
func (b Backoff) Delay(attempt int) time.Duration {
	c := b.Ceiling(attempt)
	r := b.Rand
	if r == nil {
		r = mrand.Int64N
	}
	return time.Duration(r(int64(c) + 1))
}

// sleepCtx waits d or until ctx ends; it reports whether the full wait elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewMessageID returns a fresh client message id: a ULID (26 characters,
// 48-bit millisecond time then 80 random bits, Crockford base32).
func NewMessageID() string {
	return newULID(time.Now())
}

func newULID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:])
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
