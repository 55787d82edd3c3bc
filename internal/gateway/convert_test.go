package gateway

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// TestNewMessageFrameMatchesEncodingJSON checks that the hand-written
// new_message encoder writes exactly what encoding/json writes.
func TestNewMessageFrameMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"a", "Z", " ", "\"", "\\", "/", "<", ">", "&", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"é", "€", "😀", "\u2028", "\u2029", "\xff", "\xe2\x82", "\xed\xa0\x80", "\ufffd", "{\"k\":1}", "日本"}
	str := func() string {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	for i := range 5000 {
		m := &chat.Message{ID: str(), ClientID: str(), ConversationID: str(), Seq: rng.Int64N(1 << 40), SenderID: str(),
			SenderDeviceID: str(), Content: str(), ContentType: []string{"text", "image", "file", ""}[rng.IntN(4)],
			Timestamp: rng.Int64()}
		if i%3 == 0 {
			m.MediaID = str()
		}
		if i%4 == 0 {
			m.ReplyToSeq = rng.Int64N(1000) - 10
		}
		want := proto.Encode(proto.NewMessage{Type: proto.TypeNewMessage, Message: wireMessage(m, "dev")})
		if got := newMessageFrame(m, "dev"); !bytes.Equal(got, want) {
			t.Fatalf("message %+v:\n got %s\nwant %s", m, got, want)
		}
	}
}

func BenchmarkNewMessageFrame(b *testing.B) {
	m := &chat.Message{ID: "01JDQ80AZ3C5E7G9J1K3M5P7R9", ClientID: "w0s12-3f-1764180000123456789", ConversationID: "01JDQ7ZK8X5V2N4M6P8R0T2W4Y",
		Seq: 123456, SenderID: "01JDQ7YB2D4F6H8K0M2P4R6T8V", SenderDeviceID: "01JDQ7YB9X1Z3B5D7F9H1K3M5P", ContentType: chat.ContentText,
		Content: "1764180000123456789 the quick brown fox jumps over the lazy dog; a chat line of ordinary length", Timestamp: 1764180000123}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = proto.Encode(proto.NewMessage{Type: proto.TypeNewMessage, Message: wireMessage(m, "")})
		}
	})
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = newMessageFrame(m, "")
		}
	})
}
