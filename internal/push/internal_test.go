package push

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func b64d(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncryptMatchesRFC8291Example encrypts the example of RFC 8291
// Appendix A with its fixed sender key and salt and compares every byte.
func TestEncryptMatchesRFC8291Example(t *testing.T) {
	as, err := ecdh.P256().NewPrivateKey(b64d(t, "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(as.PublicKey().Bytes()); got != "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8" {
		t.Fatalf("sender public key %s", got)
	}
	out, err := encryptWith(as, b64d(t, "DGv6ra1nlYgDCS1FRnbzlw"), []byte("When I grow up, I want to be a watermelon"),
		b64d(t, "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
		b64d(t, "BTBZMqHH6r4Tts7J_aSIgg"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
	if got := base64.RawURLEncoding.EncodeToString(out); got != want {
		t.Fatalf("RFC 8291 example:\n got %s\nwant %s", got, want)
	}
}

func TestEncryptPadsToBlocksAndRefusesOversizedPayloads(t *testing.T) {
	ua, _ := ecdh.P256().GenerateKey(rand.Reader)
	auth := bytes.Repeat([]byte{1}, 16)
	for _, n := range []int{0, 1, 62, 63, 64, 300} {
		out, err := encrypt(bytes.Repeat([]byte{'x'}, n), ua.PublicKey().Bytes(), auth)
		if err != nil {
			t.Fatal(err)
		}
		if rec := len(out) - eceHeaderLen - eceTagLen; rec%padBlock != 0 || rec < n+1 {
			t.Fatalf("payload %d: record of %d bytes, want a multiple of %d", n, rec, padBlock)
		}
	}
	if _, err := encrypt(make([]byte, MaxPlaintext+1), ua.PublicKey().Bytes(), auth); err == nil {
		t.Fatal("an oversized payload was sealed")
	}
}

func TestRetryDelayBacksOffAndHonoursRetryAfter(t *testing.T) {
	s := &Service{cfg: Config{RetryBase: time.Second, RetryMax: time.Minute, TTL: time.Hour}}
	for attempts, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		for range 50 {
			if d := s.retryDelay(attempts, 0); d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempts, d, want/2, want)
			}
		}
	}
	if d := s.retryDelay(40, 0); d > time.Minute || d < 30*time.Second {
		t.Fatalf("capped delay %s", d)
	}
	if d := s.retryDelay(0, 10*time.Second); d != 10*time.Second {
		t.Fatalf("Retry-After 10s gave %s", d)
	}
	if d := s.retryDelay(0, 48*time.Hour); d != time.Hour {
		t.Fatalf("Retry-After beyond the TTL gave %s, want the TTL", d)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(time.RFC1123): 90 * time.Second,
		now.Add(-time.Minute).Format(time.RFC1123):     0,
	} {
		if got := retryAfter(strings.Replace(in, "UTC", "GMT", 1), now); got != want {
			t.Errorf("Retry-After %q = %s, want %s", in, got, want)
		}
	}
}

func TestAlertTextAndCollapseKey(t *testing.T) {
	for _, c := range []struct {
		name  string
		count int64
		want  string
	}{{"Alice", 1, "Alice sent you a message"}, {"Alice", 5, "Alice sent you 5 messages"}, {"", 2, "Someone sent you 2 messages"}} {
		if got := AlertText(c.name, c.count); got != c.want {
			t.Errorf("AlertText(%q, %d) = %q", c.name, c.count, got)
		}
	}
	if k := CollapseKey("01JX4Z8M3Q5V7N2K9B6C1D0E4F"); k != "01JX4Z8M3Q5V7N2K9B6C1D0E4F" {
		t.Errorf("a ULID is its own collapse key, got %q", k)
	}
	long := CollapseKey(strings.Repeat("conversation/with:odd chars", 3))
	if len(long) != 32 || !isB64URL(long) {
		t.Errorf("hashed collapse key %q", long)
	}
}
