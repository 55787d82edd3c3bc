package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// TestCrashDurability proves delivery rule 1, "persist before ack: an ack
// means the message survives kill -9 of the server process". It runs parleyd
// as a subprocess, streams pipelined send_message frames from several
// sockets into a direct and a group conversation, kills the process with
// SIGKILL mid-stream, restarts it on the same data directory and checks,
// through the REST history, that
//
//   - every acked message is stored, with the seq and server message id of
//     its ack (the property that fails if acks ever go out before the commit);
//   - each conversation's seqs are exactly 1..N, no gap, no duplicate, and
//     every stored message is one the test sent, exactly once;
//   - one socket's messages got increasing seqs in the order they were sent,
//     and what survived of its stream is a prefix of it;
//   - every message sent but not acked, resent with the same message_id,
//     lands exactly once (the ones the crash stored get their stored seq and
//     id back), a second resend (and a resend of acked messages) changes
//     nothing, and each conversation then holds exactly one message per
//     distinct message_id ever sent into it.
//
// The kill comes 100-400 ms after the first ack, while every socket has a
// full pipeline. After each kill, parley.db (with its WAL) passes the store's
// integrity check. The cycle repeats PARLEY_CRASH_ITERATIONS times (default
// 5), alternating --group-commit on and off (the resends of one crash run in
// the other mode), and every earlier message is checked again after each
// crash. parleyd inherits the environment, so other PARLEY_<FLAG> settings
// (PARLEY_MAX_BATCH=1, say) apply to it; PARLEY_CRASH_RACE=1 builds it with
// the race detector.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds parleyd and kills it repeatedly")
	}
	iterations := 5
	if v := os.Getenv("PARLEY_CRASH_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PARLEY_CRASH_ITERATIONS=%q: want a positive integer", v)
		}
		iterations = n
	}
	began := time.Now()
	proc := newParleydProc(t, buildParleyd(t))
	proc.extra = []string{"--group-commit=true"}
	proc.start()
	srv := proc.srv

	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	carol, dave := newAccount(t, srv, "carol"), newAccount(t, srv, "dave")
	device := func(a account) account { a.login(t, srv); return a } // another device of a
	dm := &crashConv{name: "direct", id: direct(t, srv, alice, bob), reader: alice}
	grp := &crashConv{name: "group", id: group(t, srv, alice, "crash", bob, carol, dave), reader: carol}
	convs := []*crashConv{dm, grp}
	for _, c := range convs {
		c.sent = map[string]sentMsg{}
		c.known = map[string]storedMsg{}
	}
	// One entry per pipelined socket: every device of every member is online,
	// as in real use, so each message is also pushed to several of them.
	senders := []*crashSender{
		{name: "a1", acct: alice, conv: dm},
		{name: "a2", acct: device(alice), conv: dm},
		{name: "b1", acct: bob, conv: dm},
		{name: "a3", acct: device(alice), conv: grp},
		{name: "b2", acct: device(bob), conv: grp},
		{name: "c1", acct: carol, conv: grp},
		{name: "d1", acct: dave, conv: grp},
	}

	var totalAcked, totalUnacked int
	for it := 1; it <= iterations; it++ {
		groupCommit := it%2 == 1 // on in the first run, then alternating
		st := runCrashStream(t, proc, it, senders)
		if t.Failed() {
			t.FailNow()
		}
		checkStoreIntegrity(t, proc.dataDir)

		proc.extra = []string{"--group-commit=" + strconv.FormatBool(!groupCommit)} // for the next run
		restartAt := time.Now()
		proc.start()
		srv = proc.srv
		restart := time.Since(restartAt)

		var storedUnacked, lost int
		for _, c := range convs {
			c.stored = verifyHistory(t, srv, c)
			for id := range c.sent {
				if _, ok := c.stored[id]; !ok {
					lost++
				} else if _, ok := c.known[id]; !ok {
					storedUnacked++
				}
			}
		}
		for _, s := range senders {
			checkStreamOrder(t, it, s)
		}
		if t.Failed() {
			t.FailNow()
		}
		resent, resendAt := 0, time.Now()
		for _, s := range senders {
			resent += resendUnacked(t, srv, it, s)
		}
		for _, c := range convs {
			c.stored = verifyHistory(t, srv, c)
			if len(c.stored) != len(c.sent) || len(c.known) != len(c.sent) {
				t.Errorf("%s: %d distinct message_ids sent, %d stored, %d with a known seq", c.name, len(c.sent), len(c.stored), len(c.known))
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		totalAcked += st.acked
		totalUnacked += st.sent - st.acked
		t.Logf("crash %d/%d (group commit %v): kill -9 %v into the stream (%v after the first ack); %d frames written, %d acked; "+
			"of the %d unacked %d had been stored, %d were lost; %d resent in %v, each stored once; restart ready in %v; history direct=%d group=%d",
			it, iterations, groupCommit, st.killAfter.Round(time.Millisecond), st.sinceFirstAck.Round(time.Millisecond), st.sent, st.acked,
			st.sent-st.acked, storedUnacked, lost, resent, time.Since(resendAt).Round(time.Millisecond), restart.Round(time.Millisecond), len(dm.stored), len(grp.stored))
		if st.closedEarly > 0 {
			t.Logf("crash %d: %d socket(s) closed by the server before the kill: %v", it, st.closedEarly, st.closeReasons)
		}
	}
	t.Logf("%d kill -9 cycles in %v: %d messages acked mid-stream, all kept with their seq; %d unacked ones resent, each stored exactly once",
		iterations, time.Since(began).Round(time.Millisecond), totalAcked, totalUnacked)
}

// crashConv is what the test knows about one conversation.
type crashConv struct {
	name   string
	id     string
	reader account // a member whose token reads the history

	mu     sync.Mutex
	sent   map[string]sentMsg   // every client message_id ever sent into it
	known  map[string]storedMsg // acked messages (during a stream or on a resend)
	stored map[string]storedMsg // what the history held at the last check
}

type sentMsg struct {
	senderID string
	content  string
}

type storedMsg struct {
	seq      int64
	serverID string
}

// crashSender is one pipelined socket, reopened in every iteration with the
// same device token.
type crashSender struct {
	name string
	acct account
	conv *crashConv

	order []string // client ids of the current iteration, in send order
	acked map[string]bool
}

type streamStats struct {
	sent, acked   int
	killAfter     time.Duration // from the first frame written to the kill
	sinceFirstAck time.Duration
	closedEarly   int
	closeReasons  []string
}

// ackFrame is the part of a server frame the stream reads (decoding into a
// struct keeps the reader fast enough for the push traffic).
type ackFrame struct {
	Type            string `json:"type"`
	MessageID       string `json:"message_id"`
	ServerMessageID string `json:"server_message_id"`
	ConversationID  string `json:"conversation_id"`
	Seq             int64  `json:"seq"`
}

// crashWindow bounds the frames one socket has written but not seen acked.
// It is above the server's per-socket in-flight limit, so the server always
// has a backlog to read and commit, and keeps the test's unacked remainder
// (frames still in socket buffers at the kill) small enough to resend.
const crashWindow = 512

// newMessagePrefix starts the pushes the stream readers skip undecoded, to
// keep up with the fan-out and see each ack as soon as it arrives (the
// sooner an ack is seen, the smaller the ack-before-commit window the test
// can catch). Should the server order its fields otherwise, every frame is
// simply decoded.
var newMessagePrefix = []byte(`{"type":"new_message"`)

// runCrashStream opens every sender's socket and streams send_message frames
// as fast as the server takes them (pipelined: never waiting for an ack, up
// to crashWindow outstanding per socket) while recording the acks; 100-400 ms
// after the first ack it kills the server with SIGKILL, and it returns once
// every socket has stopped.
func runCrashStream(t *testing.T, proc *parleydProc, it int, senders []*crashSender) streamStats {
	t.Helper()
	type conn struct {
		s  *crashSender
		ws *websocket.Conn
	}
	conns := make([]conn, len(senders))
	for i, s := range senders {
		conns[i] = conn{s: s, ws: dialStream(t, proc.srv.WSURL, s.acct.Token)}
		s.order, s.acked = nil, map[string]bool{}
	}

	var (
		mu       sync.Mutex // guards the senders' order/acked, st and problems
		st       streamStats
		problems []string
		firstAck = make(chan struct{})
		ackOnce  sync.Once
		ackedAt  time.Time
		killing  = make(chan struct{}) // closed just before the kill
		wg       sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	start := time.Now()
	for _, c := range conns {
		s, ws := c.s, c.ws
		readerDone := make(chan struct{})
		window := make(chan struct{}, crashWindow)
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case window <- struct{}{}:
				case <-readerDone: // the socket is gone
					return
				}
				id := fmt.Sprintf("k%d-%s-%06d", it, s.name, n)
				content := "crash test " + id
				raw, _ := json.Marshal(sendText(s.conv.id, id, content))
				// Recorded before the write: a frame may reach the server
				// even if the write reports an error.
				mu.Lock()
				s.order = append(s.order, id)
				st.sent++
				mu.Unlock()
				s.conv.mu.Lock()
				s.conv.sent[id] = sentMsg{senderID: s.acct.UserID, content: content}
				s.conv.mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := ws.Write(ctx, websocket.MessageText, raw)
				cancel()
				if err != nil {
					return
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			defer close(readerDone)
			for {
				_, data, err := ws.Read(context.Background())
				if err != nil {
					select {
					case <-killing:
					default:
						mu.Lock()
						st.closedEarly++
						st.closeReasons = append(st.closeReasons, fmt.Sprintf("%s: %v", s.name, err))
						mu.Unlock()
					}
					return
				}
				if bytes.HasPrefix(data, newMessagePrefix) {
					continue // a push of another sender's message: not this reader's business
				}
				var f ackFrame
				if err := json.Unmarshal(data, &f); err != nil {
					fail("%s: server sent invalid JSON %q: %v", s.name, data, err)
					return
				}
				switch f.Type {
				case "ack":
					if f.ConversationID != s.conv.id || f.Seq < 1 || f.ServerMessageID == "" {
						fail("%s: bad ack %s", s.name, data)
						continue
					}
					mu.Lock()
					dup := s.acked[f.MessageID]
					s.acked[f.MessageID] = true
					if !dup {
						st.acked++
					}
					mu.Unlock()
					if dup {
						fail("%s: two acks for %s", s.name, f.MessageID)
						continue
					}
					release(window)
					s.conv.mu.Lock()
					_, wasSent := s.conv.sent[f.MessageID]
					s.conv.known[f.MessageID] = storedMsg{seq: f.Seq, serverID: f.ServerMessageID}
					s.conv.mu.Unlock()
					if !wasSent {
						fail("%s: ack for a message_id never sent: %s", s.name, data)
					}
					ackOnce.Do(func() { ackedAt = time.Now(); close(firstAck) })
				case "error":
					fail("%s: error frame during the stream: %s", s.name, data)
					release(window)
				}
			}
		}()
	}

	// Kill mid-stream: 100-400 ms after the first ack, with the pipeline full.
	select {
	case <-firstAck:
	case <-time.After(30 * time.Second):
		t.Fatalf("crash %d: no ack within 30s of streaming", it)
	}
	if proc.afterFirstAck != nil {
		proc.afterFirstAck()
	}
	time.Sleep(100*time.Millisecond + rand.N(300*time.Millisecond)) // the workload's length, not an assertion
	close(killing)
	mu.Lock()
	st.killAfter, st.sinceFirstAck = time.Since(start), time.Since(ackedAt)
	mu.Unlock()
	proc.kill()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("crash %d: sockets still busy 20s after the kill", it)
	}
	for _, c := range conns {
		_ = c.ws.CloseNow()
	}
	for i, p := range problems {
		if i == 20 {
			t.Errorf("crash %d: ... and %d more problems", it, len(problems)-i)
			break
		}
		t.Errorf("crash %d: %s", it, p)
	}
	return st
}

// release frees a slot of a pipeline window (never blocking: a bogus ack is
// reported, not waited on).
func release(window chan struct{}) {
	select {
	case <-window:
	default:
	}
}

// dialStream opens a raw WebSocket and waits for ready.
func dialStream(t *testing.T, url, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("waiting for ready: %v", err)
	}
	var f ackFrame
	if err := json.Unmarshal(data, &f); err != nil || f.Type != "ready" {
		t.Fatalf("first frame %q, want ready", data)
	}
	return ws
}

// verifyHistory reads the whole history of c through REST (after=, oldest
// first, paging while has_more) and checks it: seqs exactly 1..N in order;
// every message one the test sent into c, with its sender and content, and
// none twice; every message with a known seq (acked) present with that seq
// and server message id. It returns the history by client message_id.
func verifyHistory(t *testing.T, srv *servertest.Server, c *crashConv) map[string]storedMsg {
	t.Helper()
	errs := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		if errs++; errs > 20 {
			t.Fatalf("%s: too many problems in the history, stopping", c.name)
		}
		t.Errorf(format, args...)
	}
	stored := make(map[string]storedMsg, len(c.known)+1024)
	serverIDs := make(map[string]int64, len(c.known)+1024)
	var after int64
	for page := 0; ; page++ {
		if page > len(c.sent)/200+2 { // the history can hold no more than what was sent
			t.Fatalf("%s: history has more pages than the %d messages sent", c.name, len(c.sent))
		}
		var p struct {
			Messages []frame `json:"messages"`
			HasMore  bool    `json:"has_more"`
		}
		path := fmt.Sprintf("/api/v1/conversations/%s/messages?after=%d&limit=200", c.id, after)
		if st := api(t, srv, "GET", path, c.reader.Token, nil, &p); st != http.StatusOK {
			t.Fatalf("%s: GET %s: status %d", c.name, path, st)
		}
		for _, m := range p.Messages {
			seq, id, sid := m.num("seq"), m.str("client_message_id"), m.str("message_id")
			if seq != after+1 {
				t.Fatalf("%s: history after seq %d goes on with seq %d: a gap, a duplicate or disorder (%v)", c.name, after, seq, m)
			}
			after = seq
			sent, ok := c.sent[id]
			switch {
			case !ok:
				errorf("%s: seq %d holds a message never sent: %v", c.name, seq, m)
			case m.str("sender_id") != sent.senderID || m.str("content") != sent.content || m.str("conversation_id") != c.id:
				errorf("%s: seq %d stored wrong: %v, want sender %s content %q", c.name, seq, m, sent.senderID, sent.content)
			}
			if prev, dup := stored[id]; dup {
				errorf("%s: message_id %s stored twice, at seq %d and %d", c.name, id, prev.seq, seq)
			}
			if prev, dup := serverIDs[sid]; dup || sid == "" {
				errorf("%s: server message id %q at seq %d (also at seq %d)", c.name, sid, seq, prev)
			}
			stored[id] = storedMsg{seq: seq, serverID: sid}
			serverIDs[sid] = seq
		}
		if !p.HasMore {
			break
		}
		if len(p.Messages) == 0 {
			t.Fatalf("%s: has_more with an empty page after seq %d", c.name, after)
		}
	}
	missing := 0
	for id, k := range c.known {
		got, ok := stored[id]
		switch {
		case !ok:
			missing++
			if missing <= 10 {
				t.Errorf("%s: acked message %s (seq %d, id %s) is missing after kill -9", c.name, id, k.seq, k.serverID)
			}
		case got != k:
			errorf("%s: acked message %s was acked with seq %d id %s, is stored with seq %d id %s", c.name, id, k.seq, k.serverID, got.seq, got.serverID)
		}
	}
	if missing > 0 {
		t.Errorf("%s: %d of %d acked messages lost by the crash: acks went out before their commit was durable", c.name, missing, len(c.known))
	}
	return stored
}

// checkStreamOrder checks that what survived of one socket's stream is a
// prefix of it, in increasing seqs: the server submits a device's frames in
// the order it reads them, so a later message cannot be stored without the
// earlier ones, nor before them.
func checkStreamOrder(t *testing.T, it int, s *crashSender) {
	t.Helper()
	var prev int64
	firstLost := ""
	for _, id := range s.order {
		m, ok := s.conv.stored[id]
		switch {
		case !ok:
			if firstLost == "" {
				firstLost = id
			}
		case firstLost != "":
			t.Errorf("crash %d, socket %s: %s is stored (seq %d) but the earlier %s is not", it, s.name, id, m.seq, firstLost)
			return
		case m.seq <= prev:
			t.Errorf("crash %d, socket %s: %s got seq %d, after an earlier message of the same socket got %d", it, s.name, id, m.seq, prev)
			return
		default:
			prev = m.seq
		}
	}
}

// resendUnacked reconnects the sender's device and resends, pipelined, every
// message of this iteration it sent without getting an ack, with the same
// message_id, as a client does after a reconnect. Each must be acked once:
// with its stored seq and id if the crash had stored it, else with a new
// seq above the history, in send order. Then everything resent, and a sample
// of the messages acked during the stream, is sent a second time and must be
// acked again with the same seq and id. It returns the number resent.
func resendUnacked(t *testing.T, srv *servertest.Server, it int, s *crashSender) int {
	t.Helper()
	c := s.conv
	var ids, sample []string
	for _, id := range s.order {
		if s.acked[id] {
			if len(sample) < 20 {
				sample = append(sample, id)
			}
		} else {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return 0
	}
	sk := dial(t, srv, s.acct.Token)
	defer func() { _ = sk.ws.CloseNow() }()

	first := resendRound(t, sk, s, ids)
	top := int64(len(c.stored))
	var prevNew int64
	for _, id := range ids {
		got := first[id]
		if was, ok := c.stored[id]; ok {
			if got != was {
				t.Errorf("crash %d, socket %s: resent %s (stored by the crash at seq %d id %s) acked with seq %d id %s", it, s.name, id, was.seq, was.serverID, got.seq, got.serverID)
			}
		} else {
			if got.seq <= top || got.seq <= prevNew {
				t.Errorf("crash %d, socket %s: resent %s got seq %d; history held %d, the previous resend of this socket got %d", it, s.name, id, got.seq, top, prevNew)
			}
			prevNew = got.seq
		}
		c.known[id] = got
	}

	second := resendRound(t, sk, s, append(ids, sample...))
	for id, got := range second {
		if want := c.known[id]; got != want {
			t.Errorf("crash %d, socket %s: second send of %s acked with seq %d id %s, the first ack said seq %d id %s", it, s.name, id, got.seq, got.serverID, want.seq, want.serverID)
		}
	}
	return len(ids)
}

// resendRound sends the messages ids of s (without waiting) and collects one
// ack for each.
func resendRound(t *testing.T, sk *sock, s *crashSender, ids []string) map[string]storedMsg {
	t.Helper()
	for _, id := range ids {
		sk.send(sendText(s.conv.id, id, s.conv.sent[id].content))
	}
	acks := make(map[string]storedMsg, len(ids))
	for len(acks) < len(ids) {
		f := sk.expect("ack", "new_message", "presence", "message_status", "typing")
		id := f.str("message_id")
		if _, dup := acks[id]; dup {
			t.Fatalf("socket %s: two acks for one send of %s: %v", s.name, id, f)
		}
		if f.str("conversation_id") != s.conv.id || f.str("status") != "sent" {
			t.Errorf("socket %s: ack %v", s.name, f)
		}
		acks[id] = storedMsg{seq: f.num("seq"), serverID: f.str("server_message_id")}
	}
	for _, id := range ids {
		if _, ok := acks[id]; !ok {
			t.Fatalf("socket %s: no ack for %s", s.name, id)
		}
	}
	return acks
}
