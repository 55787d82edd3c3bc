package gateway

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// TestMessageMediaOnTheWire: a message's media description goes out as its
// "media" object (with the media id), identically from the hand-written
// new_message encoder and from encoding/json (history, last_message), and
// never for an e2ee message.
func TestMessageMediaOnTheWire(t *testing.T) {
	info := &chat.MediaInfo{ContentType: "image/jpeg", Size: 123456, Width: 640, Height: 480,
		Name: "<b>&\"x\"\u2028.jpg", Thumbnail: "data:image/jpeg;base64,/9j/4AAQ+/=="}
	cases := []struct {
		name string
		m    chat.Message
		want *proto.MessageMedia
	}{
		{"image", chat.Message{ContentType: chat.ContentImage, MediaID: "m1", Media: info},
			&proto.MessageMedia{MediaID: "m1", ContentType: "image/jpeg", Size: 123456, Width: 640, Height: 480,
				Name: info.Name, Thumbnail: info.Thumbnail}},
		{"voice", chat.Message{ContentType: chat.ContentVoice, MediaID: "m2", ReplyToSeq: 4,
			Media: &chat.MediaInfo{ContentType: "audio/ogg", Size: 9, DurationMS: 1500}},
			&proto.MessageMedia{MediaID: "m2", ContentType: "audio/ogg", Size: 9, DurationMS: 1500}},
		{"reference without description", chat.Message{ContentType: chat.ContentText, Content: "x", MediaID: "m3"}, nil},
		{"e2ee", chat.Message{ContentType: chat.ContentE2EE, Content: "{}", MediaID: "m4", Media: info}, nil},
	}
	for _, tc := range cases {
		m := tc.m
		m.ID, m.ConversationID, m.Seq, m.SenderID, m.Timestamp = "id", "c", 7, "u", 1700000000000
		frame := newMessageFrame(&m, "dev")
		if want := proto.Encode(proto.NewMessage{Type: proto.TypeNewMessage, Message: wireMessage(&m, "dev")}); !bytes.Equal(frame, want) {
			t.Errorf("%s: hand-written frame differs from encoding/json:\n got %s\nwant %s", tc.name, frame, want)
		}
		var got struct {
			Media *proto.MessageMedia `json:"media"`
		}
		if err := json.Unmarshal(frame, &got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		switch {
		case tc.want == nil && got.Media != nil:
			t.Errorf("%s: media %+v on the wire, want none", tc.name, got.Media)
		case tc.want != nil && (got.Media == nil || *got.Media != *tc.want):
			t.Errorf("%s: media %+v, want %+v", tc.name, got.Media, tc.want)
		}
		conv := wireConversation(&chat.Conversation{ID: "c", LastMessage: &m}, "")
		if lm := conv.LastMessage; (lm.Media == nil) != (tc.want == nil) {
			t.Errorf("%s: last_message media %+v, want %+v", tc.name, lm.Media, tc.want)
		}
	}
}
