package client

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestBackoffCeiling(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000, 2000}
	for i, w := range want {
		if got := b.Ceiling(i); got != w*time.Millisecond {
			t.Errorf("Ceiling(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if got := b.Ceiling(1000); got != 2*time.Second {
		t.Errorf("Ceiling(1000) = %v (overflow?)", got)
	}
	if got := (Backoff{}).Ceiling(0); got != DefaultBackoffMin {
		t.Errorf("default min = %v", got)
	}
	if got := (Backoff{}).Ceiling(100); got != DefaultBackoffMax {
		t.Errorf("default max = %v", got)
	}
	if got := (Backoff{Min: time.Second, Max: time.Millisecond}).Ceiling(3); got != time.Second {
		t.Errorf("max below min = %v", got)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	// The delay is uniform in [0, ceiling]: check both ends with a fixed source.
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	var asked int64
	b.Rand = func(n int64) int64 { asked = n; return 0 }
	if d := b.Delay(2); d != 0 || asked != int64(400*time.Millisecond)+1 {
		t.Fatalf("low end: delay %v, asked %d", d, asked)
	}
	b.Rand = func(n int64) int64 { return n - 1 }
	if d := b.Delay(2); d != 400*time.Millisecond {
		t.Fatalf("high end: %v", d)
	}
	// With the real source, delays stay within bounds and vary.
	b.Rand = nil
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		d := b.Delay(3)
		if d < 0 || d > 800*time.Millisecond {
			t.Fatalf("delay %v out of [0, 800ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("no jitter: %d distinct delays", len(seen))
	}
}

func TestNewMessageID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := NewMessageID()
		if len(id) != 26 || strings.Trim(id, crockford) != "" {
			t.Fatalf("bad ULID %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if id[:10] < prev {
			t.Fatalf("time prefix went backwards: %q < %q", id[:10], prev)
		}
		prev = id[:10]
	}
	a, b := newULID(time.UnixMilli(1000)), newULID(time.UnixMilli(2000))
	if a[:10] >= b[:10] {
		t.Fatalf("not time ordered: %s %s", a, b)
	}
}

func TestURLs(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:8080":                  "http://localhost:8080",
		"http://localhost:8080/":          "http://localhost:8080",
		"https://chat.example.com/api/v1": "https://chat.example.com",
		" https://x.org/parley/ ":         "https://x.org/parley",
	} {
		if got := NormalizeURL(in); got != want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"http://localhost:8080": "ws://localhost:8080/api/v1/ws",
		"https://x.org/parley/": "wss://x.org/parley/api/v1/ws",
		"localhost:1":           "ws://localhost:1/api/v1/ws",
	} {
		got, err := wsURL(in)
		if err != nil || got != want {
			t.Errorf("wsURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := wsURL("ftp://x"); err == nil {
		t.Error("wsURL accepted ftp")
	}
}

func TestMessageJSON(t *testing.T) {
	in := `{"type":"new_message","message_id":"01H","client_message_id":"c1","conversation_id":"cv","seq":7,
		"sender_id":"u1","sender_device_id":"d1","content":"hi","content_type":"text","media_id":"m1","reply_to_seq":3,"timestamp":1700000000000}`
	var m Message
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want := Message{MessageID: "01H", ClientMessageID: "c1", ConversationID: "cv", Seq: 7, SenderID: "u1",
		SenderDeviceID: "d1", Content: "hi", ContentType: "text", MediaID: "m1", ReplyToSeq: 3, Timestamp: 1700000000000}
	if m != want {
		t.Fatalf("got %+v", m)
	}
	// Every protocol field name appears when encoding.
	b, _ := json.Marshal(m)
	for _, f := range []string{"message_id", "client_message_id", "conversation_id", "seq", "sender_id",
		"sender_device_id", "content", "content_type", "media_id", "reply_to_seq", "timestamp"} {
		if !strings.Contains(string(b), `"`+f+`"`) {
			t.Errorf("field %s missing from %s", f, b)
		}
	}
	// An e2ee envelope given as an object is kept as its JSON text.
	var e Message
	if err := json.Unmarshal([]byte(`{"seq":1,"content_type":"e2ee","content":{"v":1,"ciphertexts":{}}}`), &e); err != nil {
		t.Fatal(err)
	}
	if e.Content != `{"v":1,"ciphertexts":{}}` {
		t.Fatalf("e2ee content = %q", e.Content)
	}
	var n Message
	if err := json.Unmarshal([]byte(`{"seq":1,"content":null}`), &n); err != nil || n.Content != "" {
		t.Fatalf("null content: %q %v", n.Content, err)
	}
}

func TestConversationUpdateJSON(t *testing.T) {
	nested := `{"type":"conversation_updated","conversation_id":"g1","change":"renamed",
		"conversation":{"conversation_id":"g1","type":"group","name":"new","members":[{"user_id":"u1","role":"admin","delivered_seq":1,"read_seq":1}],"last_seq":4}}`
	flat := `{"type":"conversation_updated","conversation_id":"g1","change":"renamed","type2":"x",
		"name":"new","members":[{"user_id":"u1","role":"admin","delivered_seq":1,"read_seq":1}],"last_seq":4}`
	for _, in := range []string{nested, flat} {
		var u ConversationUpdate
		if err := json.Unmarshal([]byte(in), &u); err != nil {
			t.Fatal(err)
		}
		if u.ConversationID != "g1" || u.Change != ChangeRenamed || u.Conversation.Name != "new" ||
			u.Conversation.ConversationID != "g1" || u.Conversation.LastSeq != 4 || len(u.Conversation.Members) != 1 {
			t.Fatalf("%s: got %+v", in, u)
		}
		if m, ok := u.Conversation.Member("u1"); !ok || m.Role != RoleAdmin {
			t.Fatalf("member lookup: %+v %v", m, ok)
		}
	}
}

func TestEventQueue(t *testing.T) {
	q := newEventQueue()
	for i := 0; i < 3000; i++ {
		q.push(Event{Kind: EventKind(i%10 + 1), Message: &Message{Seq: int64(i)}})
		if i%3 == 0 {
			if ev, ok := q.pop(); !ok || ev.Message.Seq != int64(i/3) {
				t.Fatalf("pop %d: %+v %v", i, ev, ok)
			}
		}
	}
	next := int64(1000)
	for {
		ev, ok := q.pop()
		if !ok {
			break
		}
		if ev.Message.Seq != next {
			t.Fatalf("got %d, want %d", ev.Message.Seq, next)
		}
		next++
	}
	if next != 3000 || q.len() != 0 {
		t.Fatalf("drained to %d, len %d", next, q.len())
	}
	q.push(Event{Kind: EventMessage}, Event{Kind: EventStatus})
	ev, _ := q.pop()
	q.pushFront(ev)
	if ev, _ := q.pop(); ev.Kind != EventMessage {
		t.Fatalf("pushFront lost order: %v", ev.Kind)
	}
	if EventMessage.String() != "message" || EventKind(99).String() != "unknown" {
		t.Fatal("EventKind.String")
	}
}
