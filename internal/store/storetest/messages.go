package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/parley-chat/parley/internal/chat"
)

var appendTests = []test{
	{"Gapless", testAppendGapless},
	{"RoundTrip", testAppendRoundTrip},
	{"MediaRoundTrip", testAppendMediaRoundTrip},
	{"CountersPerConversation", testAppendCountersPerConversation},
	{"DuplicateLaterBatch", testAppendDuplicateLaterBatch},
	{"DuplicateSameBatch", testAppendDuplicateSameBatch},
	{"DuplicateScopedToSender", testAppendDuplicateScopedToSender},
	{"DuplicateBeforeMembership", testAppendDuplicateBeforeMembership},
	{"EmptyClientIDNeverDuplicate", testAppendEmptyClientID},
	{"PerMessageErrors", testAppendPerMessageErrors},
	{"FailedMessageNotRemembered", testAppendFailedNotRemembered},
	{"RecipientsAtCommitTime", testAppendRecipients},
	{"EmptyBatch", testAppendEmptyBatch},
	{"Concurrent", testAppendConcurrent},
	{"ConcurrentDuplicates", testAppendConcurrentDuplicates},
}

func testAppendGapless(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	first := []chat.Message{f.msg(g.ID, a, "1"), f.msg(g.ID, b, "2"), f.msg(g.ID, a, "3")}
	res := f.appendOK(first...)
	for i, r := range res {
		want := first[i]
		want.Seq = int64(i + 1)
		if r.Message != want || r.Duplicate {
			t.Errorf("result %d = %+v (duplicate %v), want %+v", i, r.Message, r.Duplicate, want)
		}
		if got, want := sorted(r.Recipients), sorted(userIDs(a, b)); !slices.Equal(got, want) {
			t.Errorf("result %d recipients = %v, want %v", i, got, want)
		}
	}
	more := f.send(g.ID, b, "4", "5")
	if got := seqs(more); !slices.Equal(got, []int64{4, 5}) {
		t.Errorf("second batch seqs = %v, want [4 5]", got)
	}
	c := f.conversation(g.ID)
	if c.LastSeq != 5 || c.LastMessage == nil || *c.LastMessage != more[1] || c.UpdatedAt != more[1].Timestamp {
		t.Errorf("conversation after 5 messages: last_seq %d updated_at %d last %+v", c.LastSeq, c.UpdatedAt, c.LastMessage)
	}
	page, _, err := f.s.Messages(f.ctx, g.ID, chat.Page{Forward: true, Limit: 10})
	noErr(t, "Messages", err)
	if got := seqs(page); !slices.Equal(got, seqRange(1, 5)) {
		t.Errorf("stored seqs = %v, want 1..5", got)
	}
}

func testAppendRoundTrip(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	d := f.direct(a, b)
	f.send(d.ID, a, "first")
	msgs := []chat.Message{
		{ID: f.id(), ClientID: "c-1", ConversationID: d.ID, SenderID: b.ID, SenderDeviceID: "dev-b",
			Content: "caption: 日本語 \"quotes\" 'single' \\ backslash", ContentType: chat.ContentImage, MediaID: "media-1",
			ReplyToSeq: 1, Timestamp: f.tick(), ClientTimestamp: 12345},
		{ID: f.id(), ClientID: "c-2", ConversationID: d.ID, SenderID: b.ID, SenderDeviceID: "dev-b",
			Content: strings.Repeat("x", chat.MaxContentBytes), ContentType: chat.ContentText, Timestamp: f.tick()},
		{ID: f.id(), ClientID: "c-3", ConversationID: d.ID, SenderID: a.ID,
			Content: `{"v":1,"ciphertexts":{}}`, ContentType: chat.ContentE2EE, Timestamp: f.tick()},
	}
	res := f.appendOK(msgs...)
	page, _, err := f.s.Messages(f.ctx, d.ID, chat.Page{Forward: true, After: 1, Limit: 10})
	noErr(t, "Messages", err)
	if len(page) != len(msgs) {
		t.Fatalf("stored %d messages, want %d", len(page), len(msgs))
	}
	for i, want := range msgs {
		want.Seq = int64(i + 2)
		if res[i].Message != want {
			t.Errorf("result %d = %+v, want %+v", i, res[i].Message, want)
		}
		if page[i] != want {
			t.Errorf("stored message %d differs: %+v, want %+v", i, short(page[i]), short(want))
		}
	}
}

// testAppendMediaRoundTrip: a message's media description (Message.Media)
// is stored with it and comes back whole, or nil when it had none, from
// every read: the append result, a duplicate, each history page, the
// conversation's last message and the user's conversation list.
func testAppendMediaRoundTrip(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	d := f.direct(a, b)
	photo := f.msg(d.ID, a, "")
	photo.ContentType, photo.MediaID = chat.ContentImage, "media-photo"
	photo.Media = &chat.MediaInfo{ContentType: "image/jpeg", Size: 2_345_678, Width: 4032, Height: 3024,
		Name:      "Été à Kyōto \"2024\" <1>.jpg",
		Thumbnail: "data:image/jpeg;base64," + strings.Repeat("/9j/4AAQSkZJRgABAQ+/=", 400)}
	voice := f.msg(d.ID, b, "")
	voice.ContentType, voice.MediaID = chat.ContentVoice, "media-voice"
	voice.Media = &chat.MediaInfo{ContentType: "audio/ogg", Size: 9, DurationMS: 61_250}
	bare := f.msg(d.ID, a, "a reference without a description")
	bare.MediaID = "media-bare"
	doc := f.msg(d.ID, b, "")
	doc.ContentType, doc.MediaID = chat.ContentFile, "media-doc"
	doc.Media = &chat.MediaInfo{ContentType: "application/pdf", Size: 1}
	msgs := []chat.Message{photo, voice, bare, doc}

	res := f.appendOK(msgs...)
	want := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		m.Seq = int64(i + 1)
		want[i] = m
		if !reflect.DeepEqual(res[i].Message, m) {
			t.Errorf("result %d = %+v, want %+v", i, mediaOf(res[i].Message), mediaOf(m))
		}
	}
	check := func(what string, got, exp []chat.Message) {
		t.Helper()
		if len(got) != len(exp) {
			t.Fatalf("%s: %d messages, want %d", what, len(got), len(exp))
		}
		for i := range exp {
			if !reflect.DeepEqual(got[i], exp[i]) {
				t.Errorf("%s: message seq %d = %+v, want %+v", what, exp[i].Seq, mediaOf(got[i]), mediaOf(exp[i]))
			}
		}
	}
	page, _, err := f.s.Messages(f.ctx, d.ID, chat.Page{Forward: true, Limit: 10})
	noErr(t, "Messages forward", err)
	check("forward page", page, want)
	page, _, err = f.s.Messages(f.ctx, d.ID, chat.Page{Limit: 10})
	noErr(t, "Messages newest", err)
	check("newest page", page, []chat.Message{want[3], want[2], want[1], want[0]})
	page, _, err = f.s.Messages(f.ctx, d.ID, chat.Page{Before: 3, Limit: 10})
	noErr(t, "Messages before", err)
	check("backward page", page, []chat.Message{want[1], want[0]})

	retry := f.msg(d.ID, a, "retry")
	retry.ClientID = photo.ClientID
	dup := f.appendOK(retry)[0]
	if !dup.Duplicate {
		t.Errorf("retry of the photo: Duplicate = false")
	}
	check("duplicate", []chat.Message{dup.Message}, want[:1])

	last := func(what string, c chat.Conversation) {
		t.Helper()
		if c.LastMessage == nil {
			t.Fatalf("%s: no last message", what)
		}
		check(what, []chat.Message{*c.LastMessage}, want[3:])
	}
	last("Conversation", f.conversation(d.ID))
	last("Conversations", findConv(t, f.conversations(b), d.ID))
	photoLast := f.appendOK(func() chat.Message {
		m := f.msg(d.ID, a, "")
		m.ContentType, m.MediaID, m.Media = chat.ContentImage, "media-photo", photo.Media
		return m
	}())[0].Message
	if c := f.conversation(d.ID); c.LastMessage == nil || !reflect.DeepEqual(*c.LastMessage, photoLast) {
		t.Errorf("Conversation: last message is not the photo with its thumbnail")
	}
	if c := findConv(t, f.conversations(a), d.ID); c.LastMessage == nil || !reflect.DeepEqual(*c.LastMessage, photoLast) {
		t.Errorf("Conversations: last message is not the photo with its thumbnail")
	}
}

// mediaOf shows a message's media description in failures.
func mediaOf(m chat.Message) string {
	if m.Media == nil {
		return fmt.Sprintf("seq %d media_id %q, no media", m.Seq, m.MediaID)
	}
	mi := *m.Media
	if len(mi.Thumbnail) > 40 {
		mi.Thumbnail = fmt.Sprintf("%s... (%d bytes)", mi.Thumbnail[:40], len(mi.Thumbnail))
	}
	return fmt.Sprintf("seq %d media_id %q media %+v", m.Seq, m.MediaID, mi)
}

// short trims a message's content for error messages.
func short(m chat.Message) chat.Message {
	if len(m.Content) > 40 {
		m.Content = fmt.Sprintf("%s... (%d bytes)", m.Content[:40], len(m.Content))
	}
	return m
}

func testAppendCountersPerConversation(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g1, g2 := f.group("one", a, b), f.group("two", a, b)
	res := f.appendOK(f.msg(g1.ID, a, "1/1"), f.msg(g2.ID, a, "2/1"), f.msg(g1.ID, b, "1/2"), f.msg(g2.ID, b, "2/2"), f.msg(g2.ID, a, "2/3"))
	want := []int64{1, 1, 2, 2, 3}
	for i, r := range res {
		if r.Message.Seq != want[i] {
			t.Errorf("message %d (%s) got seq %d, want %d", i, r.Message.Content, r.Message.Seq, want[i])
		}
	}
	if c := f.conversation(g1.ID); c.LastSeq != 2 {
		t.Errorf("g1 last_seq = %d, want 2", c.LastSeq)
	}
	if c := f.conversation(g2.ID); c.LastSeq != 3 {
		t.Errorf("g2 last_seq = %d, want 3", c.LastSeq)
	}
}

func testAppendDuplicateLaterBatch(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	orig := f.send(g.ID, a, "hello")[0]
	f.send(g.ID, b, "reply")

	retry := f.msg(g.ID, a, "hello again, different text")
	retry.ClientID = orig.ClientID
	r := f.appendOK(retry)[0]
	if !r.Duplicate {
		t.Errorf("retry with the same ClientID: Duplicate = false")
	}
	if r.Message != orig {
		t.Errorf("duplicate returned %+v, want the original %+v", r.Message, orig)
	}
	if len(r.Recipients) != 0 {
		t.Errorf("duplicate has recipients %v", r.Recipients)
	}
	if c := f.conversation(g.ID); c.LastSeq != 2 {
		t.Errorf("last_seq after a duplicate = %d, want 2", c.LastSeq)
	}
	next := f.send(g.ID, a, "new")[0]
	if next.Seq != 3 {
		t.Errorf("the message after a duplicate got seq %d, want 3", next.Seq)
	}
}

func testAppendDuplicateSameBatch(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	m1 := f.msg(g.ID, a, "once")
	m2 := f.msg(g.ID, a, "twice")
	m2.ClientID = m1.ClientID
	m3 := f.msg(g.ID, b, "other")
	res := f.appendOK(m1, m2, m3)
	if res[0].Duplicate || res[0].Message.Seq != 1 {
		t.Errorf("first = %+v, want stored at seq 1", res[0])
	}
	if !res[1].Duplicate || res[1].Message != res[0].Message {
		t.Errorf("second = %+v (duplicate %v), want a duplicate of %+v", res[1].Message, res[1].Duplicate, res[0].Message)
	}
	if res[2].Duplicate || res[2].Message.Seq != 2 {
		t.Errorf("third = %+v, want stored at seq 2", res[2])
	}
}

func testAppendDuplicateScopedToSender(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	ma, mb := f.msg(g.ID, a, "from a"), f.msg(g.ID, b, "from b")
	mb.ClientID = ma.ClientID
	res := f.appendOK(ma, mb)
	if res[0].Duplicate || res[1].Duplicate || res[1].Message.Seq != 2 {
		t.Errorf("one ClientID from two senders: %+v", res)
	}
}

func testAppendDuplicateBeforeMembership(f *fixture) {
	// The duplicate check comes first: a retry is answered with the original
	// message even when the sender has left or names another conversation.
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g, other := f.group("g", b, a), f.group("other", a, b)
	orig := f.send(g.ID, a, "hello")[0]
	noErr(t, "RemoveMember", f.s.RemoveMember(f.ctx, g.ID, a.ID, f.tick()))

	retry := f.msg(g.ID, a, "hello")
	retry.ClientID = orig.ClientID
	elsewhere := f.msg(other.ID, a, "hello")
	elsewhere.ClientID = orig.ClientID
	for _, r := range f.appendOK(retry, elsewhere) {
		if !r.Duplicate || r.Message != orig {
			t.Errorf("retry = %+v (duplicate %v), want the original %+v", r.Message, r.Duplicate, orig)
		}
	}
	if c := f.conversation(other.ID); c.LastSeq != 0 {
		t.Errorf("other conversation got a message: last_seq %d", c.LastSeq)
	}
}

func testAppendEmptyClientID(f *fixture) {
	// Pinned: a message without a ClientID has no idempotency key.
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	m1, m2 := f.msg(g.ID, a, "1"), f.msg(g.ID, a, "2")
	m1.ClientID, m2.ClientID = "", ""
	res := f.appendOK(m1, m2)
	if res[0].Duplicate || res[1].Duplicate || res[1].Message.Seq != 2 {
		t.Errorf("two messages without ClientID: %+v", res)
	}
}

func testAppendPerMessageErrors(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("g", a, b)
	batch := []chat.Message{
		f.msg(g.ID, a, "ok 1"),
		f.msg("no-such-conversation", a, "lost"),
		f.msg(g.ID, c, "intruder"),
		f.msg(g.ID, b, "ok 2"),
	}
	res, err := f.s.AppendBatch(f.ctx, batch)
	noErr(t, "AppendBatch", err)
	if len(res) != len(batch) {
		t.Fatalf("%d results for %d messages", len(res), len(batch))
	}
	noErr(t, "message 0", res[0].Err)
	wantErr(t, "message to an unknown conversation", res[1].Err, chat.ErrNotFound)
	wantErr(t, "message from a non-member", res[2].Err, chat.ErrForbidden)
	noErr(t, "message 3", res[3].Err)
	if res[0].Message.Seq != 1 || res[3].Message.Seq != 2 {
		t.Errorf("seqs around failures = %d, %d; want 1, 2", res[0].Message.Seq, res[3].Message.Seq)
	}
	page, _, err := f.s.Messages(f.ctx, g.ID, chat.Page{Forward: true, Limit: 10})
	noErr(t, "Messages", err)
	if len(page) != 2 || page[0] != res[0].Message || page[1] != res[3].Message {
		t.Errorf("stored %+v, want the two good messages", page)
	}
}

func testAppendFailedNotRemembered(f *fixture) {
	// A refused message writes nothing, not even its idempotency key.
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a)
	m := f.msg(g.ID, b, "too early")
	res, err := f.s.AppendBatch(f.ctx, []chat.Message{m})
	noErr(t, "AppendBatch", err)
	wantErr(t, "message from a non-member", res[0].Err, chat.ErrForbidden)

	noErr(t, "AddMembers", f.s.AddMembers(f.ctx, g.ID, []chat.Member{{UserID: b.ID, Role: chat.RoleMember}}, 10, f.tick()))
	r := f.appendOK(m)[0]
	if r.Duplicate || r.Message.Seq != 1 {
		t.Errorf("retry after joining = %+v (duplicate %v), want stored at seq 1", r.Message, r.Duplicate)
	}
}

func testAppendRecipients(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g := f.group("g", a, b)
	check := func(step string, from chat.User, want ...chat.User) {
		t.Helper()
		r := f.appendOK(f.msg(g.ID, from, step))[0]
		if got, w := sorted(r.Recipients), sorted(userIDs(want...)); !slices.Equal(got, w) {
			t.Errorf("%s: recipients = %v, want %v", step, got, w)
		}
	}
	check("before", a, a, b)
	noErr(t, "AddMembers", f.s.AddMembers(f.ctx, g.ID, []chat.Member{{UserID: c.ID, Role: chat.RoleMember}}, 10, f.tick()))
	check("after carol joined", b, a, b, c)
	noErr(t, "RemoveMember", f.s.RemoveMember(f.ctx, g.ID, b.ID, f.tick()))
	check("after bob left", c, a, c)
}

func testAppendEmptyBatch(f *fixture) {
	res, err := f.s.AppendBatch(f.ctx, nil)
	noErr(f.t, "AppendBatch(nil)", err)
	if len(res) != 0 {
		f.t.Errorf("AppendBatch(nil) = %v", res)
	}
}

func testAppendConcurrent(f *fixture) {
	t := f.t
	const writers, perWriter = 20, 50
	us := f.users("alice", "bob", "carol", "dave")
	g := f.group("busy", us[0], us[1:]...)
	quiet := f.group("quiet", us[0], us[1])
	f.send(quiet.ID, us[1], "unrelated")

	// Build every message up front; writer w sends its messages in order,
	// in batches of 1 to 5.
	msgs := make([][]chat.Message, writers)
	for w := range msgs {
		for i := range perWriter {
			msgs[w] = append(msgs[w], f.msg(g.ID, us[w%len(us)], fmt.Sprintf("w%d-%d", w, i)))
		}
	}
	results := make([][]chat.AppendResult, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			size := w%5 + 1
			for i := 0; i < perWriter; i += size {
				res, err := f.s.AppendBatch(f.ctx, msgs[w][i:min(i+size, perWriter)])
				if err != nil {
					t.Errorf("writer %d: AppendBatch: %v", w, err)
					return
				}
				results[w] = append(results[w], res...)
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}

	bySeq := make(map[int64]chat.Message)
	for w, rs := range results {
		if len(rs) != perWriter {
			t.Fatalf("writer %d got %d results, want %d", w, len(rs), perWriter)
		}
		var last int64
		for i, r := range rs {
			if r.Err != nil || r.Duplicate {
				t.Fatalf("writer %d message %d: err %v duplicate %v", w, i, r.Err, r.Duplicate)
			}
			if prev, ok := bySeq[r.Message.Seq]; ok {
				t.Fatalf("seq %d given twice: %s and %s", r.Message.Seq, prev.Content, r.Message.Content)
			}
			if r.Message.Seq <= last {
				t.Errorf("writer %d: seq %d after %d: not in send order", w, r.Message.Seq, last)
			}
			last = r.Message.Seq
			bySeq[r.Message.Seq] = r.Message
		}
	}
	const total = writers * perWriter
	for s := int64(1); s <= total; s++ {
		if _, ok := bySeq[s]; !ok {
			t.Fatalf("seq %d missing: the seqs have a gap", s)
		}
	}
	if c := f.conversation(g.ID); c.LastSeq != total {
		t.Errorf("last_seq = %d, want %d", c.LastSeq, total)
	}
	if c := f.conversation(quiet.ID); c.LastSeq != 1 {
		t.Errorf("an unrelated conversation's last_seq = %d, want 1", c.LastSeq)
	}
	// The stored history is exactly what the results said.
	var after int64
	for {
		page, more, err := f.s.Messages(f.ctx, g.ID, chat.Page{Forward: true, After: after, Limit: 200})
		noErr(t, "Messages", err)
		for _, m := range page {
			if m != bySeq[m.Seq] || m.Seq != after+1 {
				t.Fatalf("stored seq %d after %d: %+v, want %+v", m.Seq, after, m, bySeq[after+1])
			}
			after = m.Seq
		}
		if !more {
			break
		}
	}
	if after != total {
		t.Errorf("paged through %d messages, want %d", after, total)
	}
}

func testAppendConcurrentDuplicates(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	const n = 10
	proto := f.msg(g.ID, a, "retried")
	res := make([]chat.AppendResult, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		m := proto
		m.ID = f.id()
		wg.Go(func() {
			<-start
			rs, err := f.s.AppendBatch(f.ctx, []chat.Message{m})
			if err != nil || len(rs) != 1 {
				t.Errorf("AppendBatch: %v, %d results", err, len(rs))
				return
			}
			res[i] = rs[0]
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	stored := 0
	var orig chat.Message
	for _, r := range res {
		noErr(t, "AppendBatch message", r.Err)
		if !r.Duplicate {
			stored++
			orig = r.Message
		}
	}
	if stored != 1 {
		t.Fatalf("%d of %d concurrent retries were stored, want 1", stored, n)
	}
	for _, r := range res {
		if r.Message != orig {
			t.Errorf("retry answered %+v, want %+v", r.Message, orig)
		}
	}
	if c := f.conversation(g.ID); c.LastSeq != 1 {
		t.Errorf("last_seq = %d, want 1", c.LastSeq)
	}
}
