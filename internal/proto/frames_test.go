package proto

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeInbound(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
		check   func(t *testing.T, in *Inbound)
	}{
		{name: "send text", in: `{"type":"send_message","message_id":"c1","conversation_id":"k","content":"hi","extra":{"x":1}}`, check: func(t *testing.T, in *Inbound) {
			if in.MessageID != "c1" || in.ConversationID != "k" || in.Content != "hi" || in.ContentType != "" {
				t.Fatalf("got %+v", in)
			}
		}},
		{name: "send object content", in: `{"type":"send_message","message_id":"c1","conversation_id":"k","content_type":"e2ee","content":{ "v" : 1 }}`, check: func(t *testing.T, in *Inbound) {
			if in.Content != `{"v":1}` {
				t.Fatalf("content %q", in.Content)
			}
		}},
		{name: "send media without content", in: `{"type":"send_message","message_id":"c1","conversation_id":"k","content_type":"image","media_id":"m"}`},
		{name: "send missing id", in: `{"type":"send_message","conversation_id":"k","content":"hi"}`, wantErr: ErrMalformed},
		{name: "send missing conversation keeps ref", in: `{"type":"send_message","message_id":"c9","content":"hi"}`, wantErr: ErrMalformed, check: func(t *testing.T, in *Inbound) {
			if in.MessageID != "c9" {
				t.Fatalf("ref lost: %+v", in)
			}
		}},
		{name: "send missing content", in: `{"type":"send_message","message_id":"c1","conversation_id":"k"}`, wantErr: ErrMalformed},
		{name: "send numeric content", in: `{"type":"send_message","message_id":"c1","conversation_id":"k","content":5}`, wantErr: ErrMalformed},
		{name: "wrong field type keeps ref", in: `{"type":"send_message","message_id":"c2","conversation_id":"k","content":"x","reply_to_seq":"a"}`, wantErr: ErrMalformed, check: func(t *testing.T, in *Inbound) {
			if in.MessageID != "c2" || in.Type != "send_message" {
				t.Fatalf("ref lost: %+v", in)
			}
		}},
		{name: "not json", in: `{"type":`, wantErr: ErrMalformed},
		{name: "array", in: `[1,2]`, wantErr: ErrMalformed},
		{name: "no type", in: `{}`, wantErr: ErrMalformed},
		{name: "unknown type", in: `{"type":"launch_rockets"}`, wantErr: ErrUnknownType},
		{name: "status", in: `{"type":"message_status","conversation_id":"k","seq":3,"status":"read"}`, check: func(t *testing.T, in *Inbound) {
			if in.Seq != 3 || in.Status != "read" {
				t.Fatalf("got %+v", in)
			}
		}},
		{name: "status missing seq", in: `{"type":"message_status","conversation_id":"k","status":"read"}`, wantErr: ErrMalformed},
		{name: "typing missing state", in: `{"type":"typing","conversation_id":"k"}`, wantErr: ErrMalformed},
		{name: "sync", in: `{"type":"sync","cursors":{"a":3,"b":0},"limit":10}`, check: func(t *testing.T, in *Inbound) {
			if in.Cursors["a"] != 3 || len(in.Cursors) != 2 || in.Limit != 10 {
				t.Fatalf("got %+v", in)
			}
		}},
		{name: "sync bad cursor", in: `{"type":"sync","cursors":{"a":"x"}}`, wantErr: ErrMalformed},
		{name: "presence needs ids", in: `{"type":"presence_subscribe"}`, wantErr: ErrMalformed},
		{name: "ping", in: `{"type":"ping"}`},
		{name: "invalid utf8", in: "{\"type\":\"ping\",\"x\":\"\xff\"}", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := DecodeInbound([]byte(tt.in))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if in == nil {
				t.Fatal("nil frame")
			}
			if tt.check != nil {
				tt.check(t, in)
			}
		})
	}
}

func TestEncodeNewMessageFlattens(t *testing.T) {
	b := Encode(NewMessage{Type: TypeNewMessage, Message: Message{MessageID: "01H", Seq: 7, Content: json.RawMessage(`"hi"`)}})
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "new_message" || m["seq"] != float64(7) || m["content"] != "hi" || m["message_id"] != "01H" {
		t.Fatalf("got %s", b)
	}
	if _, ok := m["media_id"]; ok || !strings.Contains(string(b), `"sender_id"`) {
		t.Fatalf("optional fields wrong: %s", b)
	}
}

func FuzzDecodeInbound(f *testing.F) {
	for _, s := range []string{
		`{"type":"send_message","message_id":"c1","conversation_id":"k","content":"hi"}`,
		`{"type":"send_message","message_id":"c1","conversation_id":"k","content":{"v":1,"ciphertexts":{}}}`,
		`{"type":"message_status","conversation_id":"k","seq":3,"status":"read"}`,
		`{"type":"sync","cursors":{"a":3},"limit":10}`,
		`{"type":"presence_subscribe","user_ids":["a"]}`,
		`{"type":"typing","conversation_id":"k","state":"typing"}`,
		`{"type":"ping"}`, `[]`, `{"type":1}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := DecodeInbound(data)
		if in == nil {
			t.Fatal("nil frame")
		}
		if err == nil {
			switch in.Type {
			case TypeSendMessage:
				if in.MessageID == "" || in.ConversationID == "" {
					t.Fatalf("accepted send_message without ids: %q", data)
				}
			case TypeMessageStatus, TypeTyping:
				if in.ConversationID == "" {
					t.Fatalf("accepted %s without conversation: %q", in.Type, data)
				}
			case TypeSync, TypePresenceSubscribe, TypePing:
			default:
				t.Fatalf("accepted unknown type %q", in.Type)
			}
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) {
			t.Fatalf("unexpected error class %v", err)
		}
	})
}
