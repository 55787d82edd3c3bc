package main

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/client"
)

// nameCache resolves user ids to usernames, asking the server once per id.
type nameCache struct {
	c      *client.Client
	selfID string
	names  map[string]string
}

func newNameCache(c *client.Client, cfg *fileConfig) *nameCache {
	n := &nameCache{c: c, names: map[string]string{}}
	if cfg != nil && cfg.UserID != "" {
		n.selfID = cfg.UserID
		if cfg.Username != "" {
			n.names[cfg.UserID] = cfg.Username
		}
	}
	return n
}

func (n *nameCache) get(ctx context.Context, userID string) string {
	if userID == "" {
		return "?"
	}
	if name, ok := n.names[userID]; ok {
		return name
	}
	name := shortID(userID)
	if u, err := n.c.User(ctx, userID); err == nil && u.Username != "" {
		name = sanitize(u.Username)
	}
	n.names[userID] = name
	return name
}

// title names a conversation: a group's name, or the other member of a
// direct conversation.
func (n *nameCache) title(ctx context.Context, cv *client.Conversation) string {
	if cv.Type == client.TypeGroup {
		if cv.Name != "" {
			return sanitize(cv.Name)
		}
		return "(unnamed group)"
	}
	var others []string
	for _, m := range cv.Members {
		if m.UserID == n.selfID {
			continue
		}
		others = append(others, "@"+n.get(ctx, m.UserID))
	}
	if len(others) == 0 {
		return "(yourself)"
	}
	return strings.Join(others, ", ")
}

// shortID abbreviates an id for display: its last 8 characters (the random
// end of a ULID, so short ids of ids made at the same time still differ).
func shortID(id string) string {
	if len(id) <= 8 {
		return id
	}
	return id[len(id)-8:]
}

// renderContent shows a message's content on a terminal, with other
// users' control and bidi characters neutralized (sanitize).
func renderContent(m *client.Message) string {
	return sanitize(rawContent(m))
}

func rawContent(m *client.Message) string {
	switch m.ContentType {
	case "", client.ContentText:
		return m.Content
	case client.ContentE2EE:
		return "[encrypted message]"
	}
	s := "[" + m.ContentType
	if m.MediaID != "" {
		s += " " + m.MediaID
	}
	if m.Media != nil && m.Media.Name != "" {
		s += " " + oneLine(m.Media.Name, 60)
	}
	s += "]"
	if m.Content != "" {
		s += " " + m.Content
	}
	return s
}

// oneLine flattens text to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// fmtWhen renders a ms timestamp for humans.
func fmtWhen(ms int64) string {
	if ms <= 0 {
		return "never"
	}
	t := time.UnixMilli(ms).Local()
	if time.Since(t) < 24*time.Hour && t.Day() == time.Now().Day() {
		return t.Format("15:04:05")
	}
	return t.Format(time.DateTime)
}

// indent prefixes every line after the first with pad, so multi-line
// messages stay readable in a log of one-line entries.
func indent(s, pad string) string {
	return strings.ReplaceAll(s, "\n", "\n"+pad)
}

// ticks renders the state of one of the caller's own messages from the other
// members' watermarks: "  ✓" sent, "  ✓✓" delivered to all, "  ✓✓ read" read
// by all; in groups "read by N/M" while only some have read it. Messages of
// others get nothing.
func ticks(conv *client.Conversation, m *client.Message, me string) string {
	if m.SenderID != me {
		return ""
	}
	others, delivered, read := 0, 0, 0
	for _, mem := range conv.Members {
		if mem.UserID == me {
			continue
		}
		others++
		if mem.DeliveredSeq >= m.Seq {
			delivered++
		}
		if mem.ReadSeq >= m.Seq {
			read++
		}
	}
	switch {
	case others == 0:
		return "  ✓"
	case read == others:
		return "  ✓✓ read"
	case read > 0:
		return fmt.Sprintf("  ✓✓ read by %d/%d", read, others)
	case delivered == others:
		return "  ✓✓"
	}
	return "  ✓"
}
