// Package security holds the small security primitives the service is given:
// the bcrypt password hasher and keyed token-bucket rate limiters.
package security

import (
	"golang.org/x/crypto/bcrypt"
)

// Bcrypt hashes passwords with bcrypt at a configurable cost.
type Bcrypt struct {
	Cost  int
	dummy []byte
}

// NewBcrypt returns a hasher; cost outside bcrypt's range takes bcrypt's default.
func NewBcrypt(cost int) *Bcrypt {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		cost = bcrypt.DefaultCost
	}
	h := &Bcrypt{Cost: cost}
	h.dummy, _ = bcrypt.GenerateFromPassword([]byte("parley-timing-equalizer"), cost)
	return h
}

// Hash returns the salted bcrypt hash of password.
func (b *Bcrypt) Hash(password string) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(password), b.Cost)
}

// Verify reports whether password matches hash. A nil hash is compared with a
// dummy so that unknown users cost as much time as known ones.
func (b *Bcrypt) Verify(hash []byte, password string) bool {
	if hash == nil {
		_ = bcrypt.CompareHashAndPassword(b.dummy, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}
