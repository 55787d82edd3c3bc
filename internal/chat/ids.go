package chat

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDGen issues ULIDs: 26 characters, lexicographically ordered by time, and
// strictly increasing within one generator even inside one millisecond.
type IDGen struct {
	mu      sync.Mutex
	lastMS  uint64
	lastRnd [10]byte
}

// New returns the next id for time now.
func (g *IDGen) New(now time.Time) string {
	ms := uint64(now.UnixMilli())
	g.mu.Lock()
	var rnd [10]byte
	if ms <= g.lastMS {
		ms = g.lastMS
		rnd = g.lastRnd
		// Increment the 80-bit random part; an overflow in one ms is practically impossible.
		for i := len(rnd) - 1; i >= 0; i-- {
			rnd[i]++
			if rnd[i] != 0 {
				break
			}
		}
	} else {
		_, _ = rand.Read(rnd[:])
		rnd[0] &= 0x7f // leave room to increment within the millisecond
	}
	g.lastMS, g.lastRnd = ms, rnd
	g.mu.Unlock()

	var b [16]byte
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	copy(b[6:], rnd[:])
	return encodeULID(b)
}

func encodeULID(b [16]byte) string {
	// 128 bits as 26 base32 characters: the first character carries 3 bits.
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
