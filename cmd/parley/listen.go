package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/parley-chat/parley/client"
)

var listenCmd = &command{
	name:    "listen",
	summary: "print incoming messages, receipts, typing and presence live",
	help: `Connects and prints what happens, until Ctrl-C:

  [15:04:05] 9ZK2M4QX <alice> hello             a message (conversation id suffix, sender)
  [15:04:06] 9ZK2M4QX * bob read up to #12 (✓✓ read)  a receipt
  [15:04:06] 9ZK2M4QX * you read up to #12 on another device
  [15:04:07] 9ZK2M4QX * bob is typing           typing
  [15:04:08] * bob is online                    presence of the people you talk to (changes only)

Messages are printed exactly once and in order; messages missed while the
connection was down are fetched and printed when it comes back. By default
only messages that arrive from now on are printed; with --resume, listen
first prints what arrived since the last 'parley listen' ended.

The server is told that the messages printed were delivered to this device
(disable with --delivered=false); with --read they are also marked read, so
the sender's ticks go from ✓ (sent) to ✓✓ (delivered) to read. The conversation ids in the output can be
given to 'parley send' and 'parley history' as they are.`,
	run: runListen,
}

func runListen(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	resume := fs.Bool("resume", false, "first print the messages that arrived since the last listen")
	presence := fs.Bool("presence", true, "print when the people you talk to go online or offline")
	delivered := fs.Bool("delivered", true, "send delivered receipts for the messages printed")
	read := fs.Bool("read", false, "also mark the messages printed as read (a terminal you watch is a chat you read)")
	if err := a.parseNoArgs(fs, cmd, args); err != nil {
		return err
	}
	rest, err := a.session(nil)
	if err != nil {
		return err
	}
	convs, err := rest.Conversations(ctx)
	if err != nil {
		return err
	}
	cursors := map[string]int64{}
	if *resume {
		maps.Copy(cursors, a.cfg.Cursors)
	}
	for _, cv := range convs {
		if _, ok := cursors[cv.ConversationID]; !ok {
			cursors[cv.ConversationID] = cv.LastSeq
		}
	}
	c, err := a.session(func(cfg *client.Config) {
		cfg.Cursors = cursors
		cfg.AutoDelivered = *delivered
	})
	if err != nil {
		return err
	}
	names := newNameCache(c, a.cfg)
	if *presence {
		if ids := otherMembers(convs, a.cfg.UserID); len(ids) > 0 {
			_ = c.SubscribePresence(ctx, ids...)
		}
	}

	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	p := &printer{w: a.stdout, errw: a.stderr, names: names, now: time.Now}
	blocked := blockedSet(ctx, c)
	for ev := range c.Events() {
		if ev.Kind == client.EventMessage && blocked[ev.Message.SenderID] {
			continue // a blocked user's messages in a shared group are hidden
		}
		p.print(ctx, ev)
		if *read && ev.Kind == client.EventMessage && ev.Message.SenderID != a.cfg.UserID {
			go func(m *client.Message) { _ = c.MarkRead(ctx, m.ConversationID, m.Seq) }(ev.Message)
		}
		if *presence && ev.Kind == client.EventConversationUpdated {
			if ids := otherMembers([]client.Conversation{ev.Update.Conversation}, a.cfg.UserID); len(ids) > 0 {
				_ = c.SubscribePresence(ctx, ids...)
			}
		}
	}
	runErr := <-errc

	// Remember how far we got, for --resume.
	if a.cfg.Cursors == nil {
		a.cfg.Cursors = map[string]int64{}
	}
	for id, seq := range c.Cursors() {
		if seq > a.cfg.Cursors[id] {
			a.cfg.Cursors[id] = seq
		}
	}
	saveErr := saveConfig(a.configPath, a.cfg)
	switch {
	case runErr == nil, errors.Is(runErr, context.Canceled):
		return saveErr
	case client.IsSessionExpired(runErr):
		var ae *client.APIError
		if errors.As(runErr, &ae) {
			return ae
		}
	}
	return runErr
}

// otherMembers lists the member ids of convs other than self.
func otherMembers(convs []client.Conversation, self string) []string {
	seen := map[string]bool{}
	var out []string
	for _, cv := range convs {
		for _, m := range cv.Members {
			if m.UserID != self && !seen[m.UserID] {
				seen[m.UserID] = true
				out = append(out, m.UserID)
			}
		}
	}
	return out
}

// printer renders events as lines.
type printer struct {
	w, errw io.Writer
	names   *nameCache
	now     func() time.Time

	presence map[string]string // user id → the status last printed
}

func (p *printer) stamp(ms int64) string {
	t := p.now()
	if ms > 0 {
		t = time.UnixMilli(ms)
	}
	return "[" + t.Local().Format("15:04:05") + "]"
}

func (p *printer) print(ctx context.Context, ev client.Event) {
	switch ev.Kind {
	case client.EventMessage:
		m := ev.Message
		prefix := fmt.Sprintf("%s %s ", p.stamp(m.Timestamp), shortID(m.ConversationID))
		line := fmt.Sprintf("<%s> %s", p.names.get(ctx, m.SenderID), renderContent(m))
		if m.ReplyToSeq > 0 {
			line = fmt.Sprintf("<%s> (reply to #%d) %s", p.names.get(ctx, m.SenderID), m.ReplyToSeq, renderContent(m))
		}
		fmt.Fprintf(p.w, "%s%s\n", prefix, indent(line, "    "))
	case client.EventStatus:
		s := ev.Status
		verb, mark := "received", "✓✓"
		if s.Status == client.StatusRead {
			verb, mark = "read", "✓✓ read"
		}
		who := p.names.get(ctx, s.UserID)
		if s.UserID == p.names.selfID {
			// The server tells a user's receipts to their other devices
			// (never back to this one): say so, not "alice received".
			fmt.Fprintf(p.w, "%s %s * you %s up to #%d on another device\n", p.stamp(s.Timestamp), shortID(s.ConversationID), verb, s.Seq)
			return
		}
		fmt.Fprintf(p.w, "%s %s * %s %s up to #%d (%s)\n", p.stamp(s.Timestamp), shortID(s.ConversationID),
			who, verb, s.Seq, mark)
	case client.EventTyping:
		t := ev.Typing
		what := "stopped typing"
		if t.Typing() {
			what = "is typing"
		}
		fmt.Fprintf(p.w, "%s %s * %s %s\n", p.stamp(0), shortID(t.ConversationID), p.names.get(ctx, t.UserID), what)
	case client.EventPresence:
		pr := ev.Presence
		// Subscribing again (after every group change) repeats the current
		// state: print changes only.
		if p.presence == nil {
			p.presence = map[string]string{}
		}
		if p.presence[pr.UserID] == pr.Status {
			return
		}
		p.presence[pr.UserID] = pr.Status
		what := "is online"
		if pr.Status != client.PresenceOnline {
			what = "is offline"
			if pr.LastSeen > 0 {
				what += " (last seen " + fmtWhen(pr.LastSeen) + ")"
			}
		}
		fmt.Fprintf(p.w, "%s * %s %s\n", p.stamp(0), p.names.get(ctx, pr.UserID), what)
	case client.EventConversationUpdated:
		u := ev.Update
		cv := u.Conversation
		var what string
		switch u.Change {
		case client.ChangeCreated:
			what = "new conversation: " + p.names.title(ctx, &cv)
		case client.ChangeRenamed:
			what = fmt.Sprintf("renamed to %q", cv.Name)
		case client.ChangeMemberAdded, client.ChangeMemberRemoved:
			what = fmt.Sprintf("members changed (%s): %s", u.Change, p.names.title(ctx, &cv))
		default:
			what = u.Change
		}
		fmt.Fprintf(p.w, "%s %s * %s\n", p.stamp(0), shortID(u.ConversationID), what)
	case client.EventConnected:
		fmt.Fprintf(p.errw, "* connected to %s\n", ev.Ready.URL)
	case client.EventDisconnected:
		if !errors.Is(ev.Err, context.Canceled) {
			fmt.Fprintf(p.errw, "* disconnected (%v); reconnecting\n", ev.Err)
		}
	case client.EventError:
		fmt.Fprintf(p.errw, "! %s\n", describeError(ev.Err))
	case client.EventExpired:
		fmt.Fprintf(p.errw, "! session expired\n")
	}
}
