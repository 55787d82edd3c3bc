package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

// publishCounter wraps a node's bus and counts what it publishes.
type publishCounter struct {
	chat.Bus
	messages atomic.Int64 // publishes of new messages, on any topic
	channel  atomic.Int64 // publishes on the channel topic
	all      atomic.Int64
}

func (p *publishCounter) Publish(ctx context.Context, topic string, ev *chat.Event) error {
	p.all.Add(1)
	if ev.Kind == chat.EventMessage {
		p.messages.Add(1)
	}
	if topic == chat.ChannelTopic {
		p.channel.Add(1)
	}
	return p.Bus.Publish(ctx, topic, ev)
}

// channelNode configures a node that delivers conversations of more than 3
// members fan-out-on-read, allows groups of 100, and counts its publishes.
func channelNode(counter *publishCounter) func(*server.Config) {
	return func(cfg *server.Config) {
		cfg.FanoutDirectMax = 3
		cfg.MaxGroupMembers = 100
		cfg.WrapBus = func(b chat.Bus) chat.Bus {
			counter.Bus = b
			return counter
		}
	}
}

// device is one raw socket of an account, with the new_message seqs it was
// handed per conversation.
type device struct {
	name string
	acct account
	s    *sock
	mu   sync.Mutex
	seqs map[string][]int64
	upd  map[string][]string // conversation_updated changes by conversation
}

func openDevice(t *testing.T, srv *servertest.Server, name string, a account) *device {
	t.Helper()
	return &device{name: name, acct: a, s: dial(t, srv, a.Token), seqs: map[string][]int64{}, upd: map[string][]string{}}
}

// drain reads every frame that arrives within d, recording messages and
// conversation changes; any other frame but acks, receipts, presence and
// typing fails the test.
func (d *device) drain(t *testing.T, dur time.Duration) {
	t.Helper()
	deadline := time.After(dur)
	for {
		select {
		case f := <-d.s.frames:
			d.record(t, f)
		case <-deadline:
			return
		}
	}
}

func (d *device) record(t *testing.T, f frame) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch f.str("type") {
	case "new_message":
		conv := f.str("conversation_id")
		d.seqs[conv] = append(d.seqs[conv], f.num("seq"))
	case "conversation_updated":
		conv := f.str("conversation_id")
		d.upd[conv] = append(d.upd[conv], f.str("change"))
	case "ack", "message_status", "presence", "typing":
	default:
		t.Errorf("%s got an unexpected frame %v", d.name, f)
	}
}

// waitSeqs reads frames until the device holds len(want) messages of conv
// (or 10 s pass), then a little longer, and checks it got exactly want.
func (d *device) waitSeqs(t *testing.T, conv string, want []int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		d.mu.Lock()
		n := len(d.seqs[conv])
		d.mu.Unlock()
		if n >= len(want) {
			break
		}
		select {
		case f := <-d.s.frames:
			d.record(t, f)
		case <-deadline:
			t.Fatalf("%s got %d of %d messages of %s", d.name, n, len(want), conv)
		}
	}
	d.drain(t, 50*time.Millisecond)
	d.mu.Lock()
	got := d.seqs[conv]
	d.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s got seqs %v of %s, want %v (each once, in order)", d.name, got, conv, want)
	}
}

// waitChange reads frames until the device was told of change in conv.
func (d *device) waitChange(t *testing.T, conv, change string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		d.mu.Lock()
		for _, c := range d.upd[conv] {
			if c == change {
				d.mu.Unlock()
				return
			}
		}
		d.mu.Unlock()
		select {
		case f := <-d.s.frames:
			d.record(t, f)
		case <-deadline:
			t.Fatalf("%s was not told of %s in %s", d.name, change, conv)
		}
	}
}

// sendAcked sends a text message from the device and returns its seq.
func (d *device) sendAcked(t *testing.T, conv, id string) int64 {
	t.Helper()
	d.s.send(sendText(conv, id, "channel "+id))
	for {
		f := d.s.next(10 * time.Second)
		if f.str("type") == "ack" && f.str("message_id") == id {
			return f.num("seq")
		}
		if f.str("type") == "error" {
			t.Fatalf("%s sending %s: %v", d.name, id, f)
		}
		d.record(t, f)
	}
}

// channelSend sends n messages round-robin from senders, recording which
// device sent each seq.
func channelSend(t *testing.T, conv, tag string, n int, senders []*device, sentBy map[int64]*device) []int64 {
	t.Helper()
	var seqs []int64
	for i := 0; i < n; i++ {
		d := senders[i%len(senders)]
		seq := d.sendAcked(t, conv, fmt.Sprintf("%s-%d", tag, i))
		sentBy[seq] = d
		seqs = append(seqs, seq)
	}
	return seqs
}

// expected is what a device must have been handed: the seqs not sent by itself.
func expected(d *device, seqs []int64, sentBy map[int64]*device) []int64 {
	var out []int64
	for _, s := range seqs {
		if sentBy[s] != d {
			out = append(out, s)
		}
	}
	return out
}

func addMembers(t *testing.T, srv *servertest.Server, admin account, conv string, users ...account) {
	t.Helper()
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.UserID
	}
	if st := api(t, srv, "POST", "/api/v1/groups/"+conv+"/members", admin.Token, map[string]any{"user_ids": ids}, nil); st != http.StatusOK {
		t.Fatalf("adding members: status %d", st)
	}
}

func removeMember(t *testing.T, srv *servertest.Server, admin account, conv string, u account) {
	t.Helper()
	if st := api(t, srv, "DELETE", "/api/v1/groups/"+conv+"/members/"+u.UserID, admin.Token, nil, nil); st != http.StatusNoContent {
		t.Fatalf("removing a member: status %d", st)
	}
}

// A 20-member channel on one node (SQLite, in-process bus) with the direct
// fan-out limit at 3: every online device of every member gets every message
// once and in seq order (the sending device excepted), non-members on the
// node get nothing, a member added later gets what follows, a removed one
// stops getting messages, and N messages cost N bus publishes.
func TestChannelFanoutOnRead(t *testing.T) {
	var counter publishCounter
	srv := servertest.Start(t, channelNode(&counter))
	accts := make([]account, 24)
	for i := range accts {
		accts[i] = newAccount(t, srv, "chan")
	}
	members, outsiders, late := accts[:20], accts[20:22], accts[22:24]
	conv := group(t, srv, members[0], "big channel", members[1:]...)

	var devs []*device
	for i, a := range members[:16] { // members 16..19 stay offline
		devs = append(devs, openDevice(t, srv, fmt.Sprint("member", i), a))
	}
	second := members[1]
	second.login(t, srv)
	devs = append(devs, openDevice(t, srv, "member1-second-device", second))
	var others []*device
	for i, a := range outsiders {
		others = append(others, openDevice(t, srv, fmt.Sprint("outsider", i), a))
	}
	lateDevs := []*device{openDevice(t, srv, "late0", late[0]), openDevice(t, srv, "late1", late[1])}

	sentBy := map[int64]*device{}
	const n = 24
	before := counter.messages.Load()
	seqs := channelSend(t, conv, "a", n, devs[:6], sentBy)
	if got := counter.messages.Load() - before; got != n {
		t.Fatalf("%d messages to a 20-member channel cost %d bus publishes, want %d", n, got, n)
	}
	for _, d := range devs {
		d.waitSeqs(t, conv, expected(d, seqs, sentBy))
	}

	// Two join (one of them online here) and one member leaves.
	addMembers(t, srv, members[0], conv, late...)
	for _, d := range lateDevs {
		d.waitChange(t, conv, chat.ChangeMemberAdded)
	}
	removed := devs[3]
	removeMember(t, srv, members[0], conv, removed.acct)
	removed.waitChange(t, conv, chat.ChangeMemberRemoved)
	before = counter.messages.Load()
	more := channelSend(t, conv, "b", n, append([]*device{lateDevs[0]}, devs[4:8]...), sentBy)
	if got := counter.messages.Load() - before; got != n {
		t.Fatalf("%d more messages cost %d bus publishes, want %d", n, got, n)
	}
	for _, d := range devs {
		want := expected(d, seqs, sentBy)
		if d != removed {
			want = append(want, expected(d, more, sentBy)...)
		}
		d.waitSeqs(t, conv, want)
	}
	for _, d := range lateDevs {
		d.waitSeqs(t, conv, expected(d, more, sentBy))
	}
	for _, d := range others {
		d.drain(t, 100*time.Millisecond)
		if len(d.seqs) != 0 || len(d.upd) != 0 {
			t.Fatalf("%s (no member) got messages %v and changes %v", d.name, d.seqs, d.upd)
		}
	}
	if got := counter.channel.Load(); got < 2*n {
		t.Fatalf("only %d publishes on the channel topic", got)
	}
}

// Three nodes on PostgreSQL and NATS, the members of a channel spread over
// them: every device gets every message once and in order, a member added on
// another node gets what follows and a removed one stops, and each message is
// one publish in the whole cluster.
func TestClusterChannelFanoutOnRead(t *testing.T) {
	counters := []*publishCounter{{}, {}, {}}
	cl := startClusterWith(t, 3, func(i int, cfg *server.Config) { channelNode(counters[i])(cfg) })
	published := func() int64 {
		var n int64
		for _, c := range counters {
			n += c.messages.Load()
		}
		return n
	}
	const size = 12
	accts := make([]account, size+2)
	for i := range accts {
		accts[i] = newAccount(t, cl.nodes[i%3], "cchan")
	}
	members, late, outsider := accts[:size], accts[size], accts[size+1]
	conv := group(t, cl.nodes[0], members[0], "spread channel", members[1:]...)
	devs := make([]*device, size)
	for i, a := range members {
		devs[i] = openDevice(t, cl.nodes[i%3], fmt.Sprintf("member%d@node%d", i, i%3), a)
	}
	lateDev := openDevice(t, cl.nodes[2], "late@node2", late)
	outDev := openDevice(t, cl.nodes[1], "outsider@node1", outsider)
	time.Sleep(100 * time.Millisecond) // NATS subscriptions settle

	// Senders on node 0 (one publisher: raw sockets see seq order).
	sentBy := map[int64]*device{}
	const n = 18
	before := published()
	seqs := channelSend(t, conv, "c", n, []*device{devs[0], devs[3], devs[6]}, sentBy)
	if got := published() - before; got != n {
		t.Fatalf("%d messages cost %d bus publishes in the cluster, want %d", n, got, n)
	}
	for _, d := range devs {
		d.waitSeqs(t, conv, expected(d, seqs, sentBy))
	}

	addMembers(t, cl.nodes[1], members[0], conv, late)
	lateDev.waitChange(t, conv, chat.ChangeMemberAdded)
	removed := devs[5] // on node 2
	removeMember(t, cl.nodes[0], members[0], conv, removed.acct)
	removed.waitChange(t, conv, chat.ChangeMemberRemoved)
	more := channelSend(t, conv, "d", n, []*device{devs[0], devs[9]}, sentBy)
	for _, d := range devs {
		want := expected(d, seqs, sentBy)
		if d != removed {
			want = append(want, expected(d, more, sentBy)...)
		}
		d.waitSeqs(t, conv, want)
	}
	lateDev.waitSeqs(t, conv, expected(lateDev, more, sentBy))
	outDev.drain(t, 100*time.Millisecond)
	if len(outDev.seqs) != 0 {
		t.Fatalf("a non-member got %v", outDev.seqs)
	}

	// SDK clients on all three nodes post at once: every app sees 1..N of the
	// conversation exactly once and in order.
	grp := group(t, cl.nodes[2], members[2], "busy channel", members[3:8]...)
	users := []*sdkUser{connectSDK(t, members[2], cl.nodes[2].URL), connectSDK(t, members[3], cl.nodes[0].URL),
		connectSDK(t, members[4], cl.nodes[1].URL), connectSDK(t, members[7], cl.nodes[1].URL)}
	const each = 10
	sendConcurrently(t, users[:3], grp, each)
	for _, u := range users {
		u.waitFor(t, grp, 3*each)
	}
}

// With the default threshold (256, the default group limit) and the group
// limit raised, a group is delivered directly up to 256 members and
// fan-out-on-read once a join takes it past that.
func TestChannelBeyondDefaultGroupLimit(t *testing.T) {
	var counter publishCounter
	srv := servertest.Start(t, func(cfg *server.Config) {
		cfg.MaxGroupMembers = 400
		cfg.WrapBus = func(b chat.Bus) chat.Bus {
			counter.Bus = b
			return &counter
		}
	})
	if srv.Config.FanoutDirectMax != 256 {
		t.Fatalf("default --fanout-direct-max is %d, want 256", srv.Config.FanoutDirectMax)
	}
	accts := make([]account, 301)
	for i := range accts {
		accts[i] = newAccount(t, srv, "wide")
	}
	conv := group(t, srv, accts[0], "wide", accts[1:256]...) // 256 members
	sender := openDevice(t, srv, "sender", accts[0])
	reader := openDevice(t, srv, "reader", accts[255])
	outsider := openDevice(t, srv, "outsider", accts[300])
	sentBy := map[int64]*device{}

	before := counter.messages.Load()
	first := channelSend(t, conv, "direct", 1, []*device{sender}, sentBy)
	if got := counter.messages.Load() - before; got != 256 {
		t.Fatalf("a message to 256 members cost %d publishes, want 256 (direct)", got)
	}
	addMembers(t, srv, accts[0], conv, accts[256:300]...) // 300 members
	before = counter.messages.Load()
	next := channelSend(t, conv, "channel", 3, []*device{sender}, sentBy)
	if got := counter.messages.Load() - before; got != 3 {
		t.Fatalf("3 messages to 300 members cost %d publishes, want 3 (fan-out-on-read)", got)
	}
	late := openDevice(t, srv, "joined", accts[299])
	last := channelSend(t, conv, "after", 1, []*device{sender}, sentBy)
	reader.waitSeqs(t, conv, append(append(first, next...), last...))
	late.waitSeqs(t, conv, last)
	outsider.drain(t, 100*time.Millisecond)
	if len(outsider.seqs) != 0 {
		t.Fatalf("a non-member got %v", outsider.seqs)
	}
}
