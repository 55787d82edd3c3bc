package storetest

import (
	"slices"

	"github.com/parley-chat/parley/internal/chat"
)

var historyTests = []test{
	{"Pages", testHistoryPages},
	{"WalkBackward", testHistoryWalkBackward},
	{"WalkForward", testHistoryWalkForward},
	{"Empty", testHistoryEmpty},
}

var receiptTests = []test{
	{"Steps", testWatermarkSteps},
	{"Batch", testWatermarkBatch},
	{"NothingToRead", testWatermarkNothingToRead},
}

func testHistoryPages(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g, other := f.group("g", a, b), f.group("other", a, b)
	// Interleave another conversation's messages: they must never show up.
	var stored []chat.Message
	for i := range 10 {
		stored = append(stored, f.send(g.ID, []chat.User{a, b}[i%2], "m")[0])
		f.send(other.ID, a, "noise")
	}
	none := []int64{}
	cases := []struct {
		name string
		page chat.Page
		want []int64
		more bool
	}{
		{"newest, limited", chat.Page{Limit: 3}, []int64{10, 9, 8}, true},
		{"newest, exactly all", chat.Page{Limit: 10}, seqRange(10, 1), false},
		{"newest, more than all", chat.Page{Limit: 50}, seqRange(10, 1), false},
		{"newest, limit 1", chat.Page{Limit: 1}, []int64{10}, true},
		{"before 5", chat.Page{Before: 5, Limit: 3}, []int64{4, 3, 2}, true},
		{"before 4, ends at 1", chat.Page{Before: 4, Limit: 3}, []int64{3, 2, 1}, false},
		{"before 3, short page", chat.Page{Before: 3, Limit: 3}, []int64{2, 1}, false},
		{"before 1", chat.Page{Before: 1, Limit: 3}, none, false},
		{"before beyond the end", chat.Page{Before: 100, Limit: 2}, []int64{10, 9}, true},
		{"before 11", chat.Page{Before: 11, Limit: 10}, seqRange(10, 1), false},
		{"after 0", chat.Page{Forward: true, After: 0, Limit: 3}, []int64{1, 2, 3}, true},
		{"after 0, exactly all", chat.Page{Forward: true, After: 0, Limit: 10}, seqRange(1, 10), false},
		{"after 6", chat.Page{Forward: true, After: 6, Limit: 3}, []int64{7, 8, 9}, true},
		{"after 7, ends at 10", chat.Page{Forward: true, After: 7, Limit: 3}, []int64{8, 9, 10}, false},
		{"after 8, short page", chat.Page{Forward: true, After: 8, Limit: 3}, []int64{9, 10}, false},
		{"after 10", chat.Page{Forward: true, After: 10, Limit: 3}, none, false},
		{"after beyond the end", chat.Page{Forward: true, After: 50, Limit: 3}, none, false},
	}
	for _, tc := range cases {
		got, more, err := f.s.Messages(f.ctx, g.ID, tc.page)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if s := seqs(got); !slices.Equal(s, tc.want) || more != tc.more {
			t.Errorf("%s (%+v): seqs %v has_more %v; want %v %v", tc.name, tc.page, s, more, tc.want, tc.more)
			continue
		}
		for _, m := range got {
			if m != stored[m.Seq-1] {
				t.Errorf("%s: message %d = %+v, want %+v", tc.name, m.Seq, m, stored[m.Seq-1])
			}
		}
	}
}

// walk pages through a conversation of n messages with the given limit and
// checks that it sees every seq once, in order, and has_more is false only on
// the last page.
func (f *fixture) walk(convID string, n, limit int, forward bool) {
	t := f.t
	t.Helper()
	var got []int64
	p := chat.Page{Limit: limit, Forward: forward}
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatalf("paging does not end")
		}
		page, more, err := f.s.Messages(f.ctx, convID, p)
		noErr(t, "Messages", err)
		if len(page) > limit {
			t.Fatalf("page of %d messages, limit %d", len(page), limit)
		}
		if more && len(page) != limit {
			t.Fatalf("short page of %d (limit %d) with has_more", len(page), limit)
		}
		got = append(got, seqs(page)...)
		if !more {
			break
		}
		if forward {
			p.After = page[len(page)-1].Seq
		} else {
			p.Before = page[len(page)-1].Seq
		}
	}
	want := seqRange(int64(n), 1)
	if forward {
		want = seqRange(1, int64(n))
	}
	if !slices.Equal(got, want) {
		t.Errorf("walk (forward %v, limit %d) saw %v, want %v", forward, limit, got, want)
	}
}

func testHistoryWalkBackward(f *fixture) {
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	f.sendN(g.ID, a, 150)
	f.walk(g.ID, 150, 50, false) // ends exactly on a page boundary
	f.walk(g.ID, 150, 40, false)
	f.walk(g.ID, 150, 200, false)
}

func testHistoryWalkForward(f *fixture) {
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	f.sendN(g.ID, b, 150)
	f.walk(g.ID, 150, 50, true)
	f.walk(g.ID, 150, 7, true)
	f.walk(g.ID, 150, 150, true)
}

func testHistoryEmpty(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	for _, p := range []chat.Page{{Limit: 10}, {Before: 5, Limit: 10}, {Forward: true, Limit: 10}} {
		got, more, err := f.s.Messages(f.ctx, g.ID, p)
		if err != nil || len(got) != 0 || more {
			t.Errorf("Messages(%+v) of an empty conversation = %v, %v, %v", p, got, more, err)
		}
	}
	// Pinned: an unknown conversation is ErrNotFound.
	_, _, err := f.s.Messages(f.ctx, "no-such-conversation", chat.Page{Limit: 10})
	wantErr(t, "Messages(unknown conversation)", err, chat.ErrNotFound)
}

func testWatermarkSteps(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	f.sendN(g.ID, a, 5)

	type dr struct{ d, r int64 }
	steps := []struct {
		name    string
		in      chat.Watermark // for bob in g
		moved   bool
		want    dr // bob's watermarks afterwards
		comment string
	}{
		{"deliver 3", chat.Watermark{DeliveredSeq: 3}, true, dr{3, 0}, ""},
		{"deliver 2", chat.Watermark{DeliveredSeq: 2}, false, dr{3, 0}, "never lowers"},
		{"deliver 3 again", chat.Watermark{DeliveredSeq: 3}, false, dr{3, 0}, "no move, not returned"},
		{"read 2", chat.Watermark{ReadSeq: 2}, true, dr{3, 2}, ""},
		{"read 4", chat.Watermark{ReadSeq: 4}, true, dr{4, 4}, "read implies delivered"},
		{"read 3", chat.Watermark{ReadSeq: 3}, false, dr{4, 4}, "never lowers"},
		{"deliver 1, read 1", chat.Watermark{DeliveredSeq: 1, ReadSeq: 1}, false, dr{4, 4}, ""},
		{"deliver 99", chat.Watermark{DeliveredSeq: 99}, true, dr{5, 4}, "capped at last_seq"},
		{"read 99", chat.Watermark{ReadSeq: 99}, true, dr{5, 5}, "capped at last_seq"},
		{"read 99 again", chat.Watermark{ReadSeq: 99}, false, dr{5, 5}, "capped value does not move again"},
	}
	for _, st := range steps {
		in := st.in
		in.ConversationID, in.UserID = g.ID, b.ID
		moved, err := f.s.UpdateWatermarks(f.ctx, []chat.Watermark{in})
		noErr(t, st.name, err)
		want := []chat.Watermark{}
		if st.moved {
			want = append(want, chat.Watermark{ConversationID: g.ID, UserID: b.ID, DeliveredSeq: st.want.d, ReadSeq: st.want.r})
		}
		if !slices.Equal(moved, want) {
			t.Errorf("%s (%s): moved %+v, want %+v", st.name, st.comment, moved, want)
		}
		if m := f.member(g.ID, b); m.DeliveredSeq != st.want.d || m.ReadSeq != st.want.r {
			t.Errorf("%s (%s): stored %d/%d, want %d/%d", st.name, st.comment, m.DeliveredSeq, m.ReadSeq, st.want.d, st.want.r)
		}
	}
	if m := f.member(g.ID, a); m.DeliveredSeq != 0 || m.ReadSeq != 0 {
		t.Errorf("another member's watermarks moved: %+v", m)
	}
}

func testWatermarkBatch(f *fixture) {
	t := f.t
	a, b, c := f.user("alice"), f.user("bob"), f.user("carol")
	g1, g2 := f.group("one", a, b), f.group("two", a, c)
	f.sendN(g1.ID, a, 4)
	f.sendN(g2.ID, c, 2)
	f.markRead(g1.ID, a, 4)

	moved, err := f.s.UpdateWatermarks(f.ctx, []chat.Watermark{
		{ConversationID: g1.ID, UserID: b.ID, DeliveredSeq: 4, ReadSeq: 2},
		{ConversationID: g1.ID, UserID: c.ID, ReadSeq: 3}, // not a member: ignored
		{ConversationID: "no-such-conversation", UserID: a.ID, ReadSeq: 1},
		{ConversationID: g1.ID, UserID: a.ID, ReadSeq: 3}, // lower: not moved
		{ConversationID: g2.ID, UserID: a.ID, DeliveredSeq: 2},
		{ConversationID: g2.ID, UserID: "no-such-user", ReadSeq: 1},
	})
	noErr(t, "UpdateWatermarks", err)
	want := []chat.Watermark{
		{ConversationID: g1.ID, UserID: b.ID, DeliveredSeq: 4, ReadSeq: 2},
		{ConversationID: g2.ID, UserID: a.ID, DeliveredSeq: 2, ReadSeq: 0},
	}
	key := func(w chat.Watermark) string { return w.ConversationID + "/" + w.UserID }
	byKey := func(ws []chat.Watermark) map[string]chat.Watermark {
		out := map[string]chat.Watermark{}
		for _, w := range ws {
			out[key(w)] = w
		}
		return out
	}
	if got, w := byKey(moved), byKey(want); len(moved) != len(want) || len(got) != len(w) {
		t.Errorf("moved %+v, want %+v (any order)", moved, want)
	} else {
		for k, v := range w {
			if got[k] != v {
				t.Errorf("moved %+v, want %+v (any order)", moved, want)
				break
			}
		}
	}
	_, err = f.s.Member(f.ctx, g1.ID, c.ID)
	wantErr(t, "a watermark made a non-member a member", err, chat.ErrForbidden)
	if m := f.member(g1.ID, a); m.ReadSeq != 4 || m.DeliveredSeq != 4 {
		t.Errorf("a lowered: %+v", m)
	}

	moved, err = f.s.UpdateWatermarks(f.ctx, nil)
	noErr(t, "UpdateWatermarks(nil)", err)
	if len(moved) != 0 {
		t.Errorf("UpdateWatermarks(nil) moved %+v", moved)
	}
}

func testWatermarkNothingToRead(f *fixture) {
	t := f.t
	a, b := f.user("alice"), f.user("bob")
	g := f.group("g", a, b)
	moved, err := f.s.UpdateWatermarks(f.ctx, []chat.Watermark{{ConversationID: g.ID, UserID: b.ID, DeliveredSeq: 3, ReadSeq: 3}})
	noErr(t, "UpdateWatermarks", err)
	if len(moved) != 0 {
		t.Errorf("watermarks moved in an empty conversation: %+v", moved)
	}
	if m := f.member(g.ID, b); m.DeliveredSeq != 0 || m.ReadSeq != 0 {
		t.Errorf("watermarks beyond last_seq 0: %+v", m)
	}
}
