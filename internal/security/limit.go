package security

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// KeyedLimiter is a token bucket per key (a user id, an IP address): rate
// events per period with a burst of the same size, so "100 per minute" allows
// 100 at once and then one every 0.6 s. Idle buckets are forgotten.
type KeyedLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// NewKeyedLimiter allows n events per period per key. n <= 0 returns nil,
// which callers treat as unlimited.
func NewKeyedLimiter(n int, period time.Duration, now func() time.Time) *KeyedLimiter {
	if n <= 0 || period <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &KeyedLimiter{
		limit:   rate.Limit(float64(n) / period.Seconds()),
		burst:   n,
		now:     now,
		buckets: make(map[string]*bucket),
	}
}

// Allow takes one token from key's bucket, or says how long until one is there.
func (l *KeyedLimiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.used = now
	l.sweep(now)
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets buckets idle long enough to be full again.
func (l *KeyedLimiter) sweep(now time.Time) {
	full := time.Duration(float64(l.burst)/float64(l.limit)*float64(time.Second)) + time.Minute
	if now.Sub(l.swept) < full {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if now.Sub(b.used) > full {
			delete(l.buckets, k)
		}
	}
}

// Blocked reports, without taking a token, whether key's bucket is empty and
// for how long it stays so.
func (l *KeyedLimiter) Blocked(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return false, 0
	}
	tokens := b.lim.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
}
