package proto

import (
	"encoding/json"
	"testing"
)

// Frame codec benchmarks: every client frame is decoded once, every server
// frame encoded once (shared by all recipients). Compare runs with benchstat:
//
//	go test -run '^$' -bench . -count 10 ./internal/proto > new.txt

var (
	benchSend = []byte(`{"type":"send_message","message_id":"w0s12-3f-1764180000123456789","conversation_id":"01JDQ7ZK8X5V2N4M6P8R0T2W4Y","content":"1764180000123456789 the quick brown fox jumps over the lazy dog; a chat line of ordinary length","content_type":"text"}`)
	benchSync = []byte(`{"type":"sync","cursors":{"01JDQ7ZK8X5V2N4M6P8R0T2W4Y":120,"01JDQ7ZK8X5V2N4M6P8R0T2W4Z":7,"01JDQ7ZK8X5V2N4M6P8R0T2W50":4411},"limit":100}`)
	benchPing = []byte(`{"type":"ping"}`)
)

func BenchmarkDecodeInbound(b *testing.B) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{{"send_message", benchSend}, {"sync", benchSync}, {"ping", benchPing}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeInbound(tc.frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	content, _ := json.Marshal("1764180000123456789 the quick brown fox jumps over the lazy dog; a chat line of ordinary length")
	msg := NewMessage{Type: TypeNewMessage, Message: Message{
		MessageID: "01JDQ80AZ3C5E7G9J1K3M5P7R9", ClientMessageID: "w0s12-3f-1764180000123456789",
		ConversationID: "01JDQ7ZK8X5V2N4M6P8R0T2W4Y", Seq: 123456, SenderID: "01JDQ7YB2D4F6H8K0M2P4R6T8V",
		SenderDeviceID: "01JDQ7YB9X1Z3B5D7F9H1K3M5P", Content: content, ContentType: "text", Timestamp: 1764180000123,
	}}
	ack := Ack{Type: TypeAck, MessageID: "w0s12-3f-1764180000123456789", ServerMessageID: "01JDQ80AZ3C5E7G9J1K3M5P7R9",
		ConversationID: "01JDQ7ZK8X5V2N4M6P8R0T2W4Y", Seq: 123456, Status: "sent", Timestamp: 1764180000123}
	for _, tc := range []struct {
		name  string
		frame any
	}{{"new_message", msg}, {"ack", ack}, {"pong", Pong{Type: TypePong}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n = len(Encode(tc.frame))
			}
			b.SetBytes(int64(n))
		})
	}
}
