package security

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Buckets is a bounded set of token buckets, one per key (a username, an
// address, a pair of them), for limits that must hold against a hostile
// caller choosing the keys:
//
//   - keys are stored as a 128-bit hash, so a megabyte-long username costs
//     16 bytes, not a megabyte;
//   - at most maxKeys buckets are held: past it, buckets that have refilled
//     (they remember nothing) are dropped first, then random ones;
//   - Take counts an attempt before the work it guards and Refund gives the
//     token back, so parallel attempts are limited like sequential ones and
//     attempts that turn out fine (a right password) use up nothing.
type Buckets struct {
	perSec  float64 // tokens added per second
	burst   float64
	maxKeys int
	now     func() time.Time

	mu sync.Mutex
	m  map[[16]byte]*tokens
}

type tokens struct {
	n     float64   // tokens at `at`
	at    time.Time // last update
	takes uint64    // Take calls so far, allowed or not
}

// Ticket identifies one Take, for RefundAlone.
type Ticket uint64

// DefaultMaxKeys bounds a Buckets when the caller gives no bound.
const DefaultMaxKeys = 100_000

// NewBuckets allows n events per period per key (burst n). n <= 0 returns
// nil, which every method treats as unlimited. maxKeys <= 0 takes
// DefaultMaxKeys; now nil takes time.Now.
func NewBuckets(n int, period time.Duration, maxKeys int, now func() time.Time) *Buckets {
	if n <= 0 || period <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Buckets{
		perSec:  float64(n) / period.Seconds(),
		burst:   float64(n),
		maxKeys: maxKeys,
		now:     now,
		m:       make(map[[16]byte]*tokens),
	}
}

func hashKey(key string) [16]byte {
	sum := sha256.Sum256([]byte(key))
	var k [16]byte
	copy(k[:], sum[:16])
	return k
}

// level brings t up to now and returns its tokens.
func (b *Buckets) level(t *tokens, now time.Time) float64 {
	if el := now.Sub(t.at); el > 0 {
		t.n = min(b.burst, t.n+el.Seconds()*b.perSec)
		t.at = now
	}
	return t.n
}

// Take takes one token from key's bucket. When it is empty it takes
// nothing and says how long until a token is there.
func (b *Buckets) Take(key string) (ok bool, wait time.Duration) {
	ok, wait, _ = b.TakeTicket(key)
	return ok, wait
}

// TakeTicket is Take, also returning a ticket for RefundAlone.
func (b *Buckets) TakeTicket(key string) (ok bool, wait time.Duration, tk Ticket) {
	if b == nil {
		return true, 0, 0
	}
	k := hashKey(key)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.m[k]
	if t == nil {
		if len(b.m) >= b.maxKeys {
			b.evict(now)
		}
		t = &tokens{n: b.burst, at: now}
		b.m[k] = t
	}
	t.takes++
	if n := b.level(t, now); n < 1 {
		return false, time.Duration((1 - n) / b.perSec * float64(time.Second)), 0
	}
	t.n--
	return true, 0, Ticket(t.takes)
}

// RefundAlone gives back the token of ticket only if no other Take of key
// happened since it. A success inside a burst of parallel attempts then
// keeps its token, so the burst as a whole is evaluated at most burst
// times; a success on its own (the owner logging in) costs nothing.
func (b *Buckets) RefundAlone(key string, tk Ticket) {
	if b == nil || tk == 0 {
		return
	}
	k := hashKey(key)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.m[k]; t != nil && t.takes == uint64(tk) {
		t.n = min(b.burst, b.level(t, now)+1)
	}
}

// Refund gives back a token taken by Take (never above the burst).
func (b *Buckets) Refund(key string) {
	if b == nil {
		return
	}
	k := hashKey(key)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.m[k]; t != nil {
		t.n = min(b.burst, b.level(t, now)+1)
	}
}

// Len is the number of buckets held.
func (b *Buckets) Len() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// evict makes room for at least an eighth of maxKeys: refilled buckets go
// first (forgetting them changes nothing), then random ones (map order).
// Called with b.mu held; amortized O(1) per new key.
func (b *Buckets) evict(now time.Time) {
	for k, t := range b.m {
		if b.level(t, now) >= b.burst {
			delete(b.m, k)
		}
	}
	room := max(1, b.maxKeys/8)
	for k := range b.m {
		if b.maxKeys-len(b.m) >= room {
			break
		}
		delete(b.m, k)
	}
}
