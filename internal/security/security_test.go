package security

import (
	"testing"
	"time"
)

func TestBcrypt(t *testing.T) {
	h := NewBcrypt(4)
	hash, err := h.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if string(hash) == "correct horse" || !h.Verify(hash, "correct horse") || h.Verify(hash, "wrong horse") || h.Verify(nil, "correct horse") {
		t.Fatal("bcrypt verify wrong")
	}
}

func TestKeyedLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewKeyedLimiter(100, time.Minute, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		if ok, _ := l.Allow("alice"); !ok {
			t.Fatalf("event %d refused", i+1)
		}
	}
	ok, wait := l.Allow("alice")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("101st: ok=%v wait=%v, want refused with a wait of ~0.6s", ok, wait)
	}
	if ok, _ := l.Allow("bob"); !ok {
		t.Fatal("bob limited by alice's bucket")
	}
	now = now.Add(700 * time.Millisecond)
	if ok, _ := l.Allow("alice"); !ok {
		t.Fatal("token not refilled after 0.7s")
	}
	if NewKeyedLimiter(0, time.Minute, nil) != nil {
		t.Fatal("zero rate should mean no limiter")
	}
}

func TestKeyedLimiterBlocked(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewKeyedLimiter(3, time.Minute, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if blocked, _ := l.Blocked("ip"); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		l.Allow("ip")
	}
	blocked, wait := l.Blocked("ip")
	if !blocked || wait <= 0 || wait > 20*time.Second {
		t.Fatalf("after 3 failures: blocked=%v wait=%v", blocked, wait)
	}
	now = now.Add(21 * time.Second)
	if blocked, _ := l.Blocked("ip"); blocked {
		t.Fatal("still blocked after a token refilled")
	}
}
