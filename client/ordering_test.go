package client

import (
	"fmt"
	"slices"
	"testing"
)

// step is one arrival (or sync/fill outcome) fed to the sequencer, with what
// it must release and request.
type step struct {
	op        string           // push, begin, sync, page, fail, abort
	conv      string           // push, page, fail, abort
	seqs      []int64          // push (each pushed in turn), page
	hasMore   bool             // page
	last      map[string]int64 // sync
	truncated []string         // sync
	permanent bool             // fail

	release []string // "conv:seq" in release order
	fills   []string // "conv>after" requested (push, sync)
	next    string   // page, fail: next fill "conv>after" or ""
	stalled bool     // page
}

func msg(conv string, seq int64) Message {
	return Message{ConversationID: conv, Seq: seq, MessageID: fmt.Sprintf("%s-%d", conv, seq)}
}

func page(conv string, seqs ...int64) []Message {
	out := make([]Message, len(seqs))
	for i, s := range seqs {
		out[i] = msg(conv, s)
	}
	return out
}

func fmtMsgs(ms []Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s:%d", m.ConversationID, m.Seq))
	}
	return out
}

func fmtFills(fs []fillRequest) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s>%d", f.ConversationID, f.After))
	}
	return out
}

func fmtNext(f *fillRequest) string {
	if f == nil {
		return ""
	}
	return fmt.Sprintf("%s>%d", f.ConversationID, f.After)
}

func orNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestSequencer(t *testing.T) {
	tests := []struct {
		name    string
		cursors map[string]int64
		synced  bool // start with a finished sync (live phase)
		steps   []step
		want    map[string]int64 // final cursors
	}{
		{
			name:    "in order",
			cursors: map[string]int64{"A": 0},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{1, 2, 3}, release: []string{"A:1", "A:2", "A:3"}},
			},
			want: map[string]int64{"A": 3},
		},
		{
			name:    "duplicates dropped",
			cursors: map[string]int64{"A": 2},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{1, 2, 3, 3, 2, 4, 4}, release: []string{"A:3", "A:4"}},
			},
			want: map[string]int64{"A": 4},
		},
		{
			name:    "gap triggers one fill and holds later messages",
			cursors: map[string]int64{"A": 1},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{4}, fills: []string{"A>1"}},
				{op: "push", conv: "A", seqs: []int64{5, 4}}, // no second fill, 4 held once
				{op: "page", conv: "A", seqs: []int64{2, 3, 4}, release: []string{"A:2", "A:3", "A:4", "A:5"}},
				{op: "push", conv: "A", seqs: []int64{6}, release: []string{"A:6"}},
			},
			want: map[string]int64{"A": 6},
		},
		{
			name:    "live message fills the gap before the fill answers",
			cursors: map[string]int64{"A": 1},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{3}, fills: []string{"A>1"}},
				{op: "push", conv: "A", seqs: []int64{2}, release: []string{"A:2", "A:3"}},
				{op: "page", conv: "A", seqs: []int64{2, 3}, release: nil},
			},
			want: map[string]int64{"A": 3},
		},
		{
			name:    "fill pages while has_more",
			cursors: map[string]int64{"A": 0},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{6}, fills: []string{"A>0"}},
				{op: "page", conv: "A", seqs: []int64{1, 2}, hasMore: true, release: []string{"A:1", "A:2"}, next: "A>2"},
				{op: "page", conv: "A", seqs: []int64{3, 4}, hasMore: true, release: []string{"A:3", "A:4"}, next: "A>4"},
				{op: "page", conv: "A", seqs: []int64{5, 6, 7}, release: []string{"A:5", "A:6", "A:7"}},
				{op: "push", conv: "A", seqs: []int64{7}},
			},
			want: map[string]int64{"A": 7},
		},
		{
			name:    "page out of order is sorted",
			cursors: map[string]int64{"A": 0},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{4}, fills: []string{"A>0"}},
				{op: "page", conv: "A", seqs: []int64{3, 1, 2}, release: []string{"A:1", "A:2", "A:3", "A:4"}},
			},
			want: map[string]int64{"A": 4},
		},
		{
			name:    "conversations are independent",
			cursors: map[string]int64{"A": 0, "B": 10},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{2}, fills: []string{"A>0"}},
				{op: "push", conv: "B", seqs: []int64{11, 12}, release: []string{"B:11", "B:12"}},
				{op: "page", conv: "A", seqs: []int64{1}, release: []string{"A:1", "A:2"}},
			},
			want: map[string]int64{"A": 2, "B": 12},
		},
		{
			name:    "no fill during sync; gap left at sync_complete is filled",
			cursors: map[string]int64{"A": 5},
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{9}}, // live push racing the sync: held, no fill
				{op: "push", conv: "A", seqs: []int64{6, 7}, release: []string{"A:6", "A:7"}},
				{op: "sync", last: map[string]int64{"A": 9}, fills: []string{"A>7"}},
				{op: "page", conv: "A", seqs: []int64{8, 9}, release: []string{"A:8", "A:9"}},
			},
			want: map[string]int64{"A": 9},
		},
		{
			name:    "sync overlapping live pushes delivers once in order",
			cursors: map[string]int64{"A": 2},
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{5, 3, 4, 5, 6}, release: []string{"A:3", "A:4", "A:5", "A:6"}},
				{op: "sync", last: map[string]int64{"A": 6}},
				{op: "push", conv: "A", seqs: []int64{6, 7}, release: []string{"A:7"}},
			},
			want: map[string]int64{"A": 7},
		},
		{
			name:    "truncated conversation filled from the cursor",
			cursors: map[string]int64{"A": 10},
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{11, 12, 13}, release: []string{"A:11", "A:12", "A:13"}},
				{op: "sync", last: map[string]int64{"A": 500}, truncated: []string{"A"}, fills: []string{"A>13"}},
				{op: "page", conv: "A", seqs: []int64{14, 15}, hasMore: true, release: []string{"A:14", "A:15"}, next: "A>15"},
				{op: "page", conv: "A", seqs: []int64{16}, release: []string{"A:16"}},
			},
			want: map[string]int64{"A": 16},
		},
		{
			name:    "truncated without last_seq still gets one fill round",
			cursors: map[string]int64{"A": 3},
			steps: []step{
				{op: "sync", truncated: []string{"A"}, fills: []string{"A>3"}},
				{op: "page", conv: "A", seqs: nil},
			},
			want: map[string]int64{"A": 3},
		},
		{
			name:    "truncated with the newest messages sent first",
			cursors: map[string]int64{"A": 10},
			steps: []step{
				// A server that sends the last `limit` messages (401..403 here).
				{op: "push", conv: "A", seqs: []int64{401, 402, 403}},
				{op: "sync", last: map[string]int64{"A": 403}, truncated: []string{"A"}, fills: []string{"A>10"}},
				{op: "page", conv: "A", seqs: []int64{11, 12}, hasMore: true, release: []string{"A:11", "A:12"}, next: "A>12"},
				{op: "page", conv: "A", seqs: seqRange(13, 400), release: relRange("A", 13, 403)},
			},
			want: map[string]int64{"A": 403},
		},
		{
			name: "unknown conversation during sync: baseline is the lowest held",
			steps: []step{
				{op: "push", conv: "N", seqs: []int64{101}}, // live push first
				{op: "push", conv: "N", seqs: []int64{1, 2}},
				{op: "sync", last: map[string]int64{"N": 100}, release: []string{"N:1", "N:2"}, fills: []string{"N>2"}},
				{op: "page", conv: "N", seqs: seqRange(3, 100), release: relRange("N", 3, 101)},
			},
			want: map[string]int64{"N": 101},
		},
		{
			name: "unknown conversation during sync released at sync_complete",
			steps: []step{
				{op: "push", conv: "N", seqs: []int64{51, 52}},
				{op: "sync", last: map[string]int64{"N": 52}, release: []string{"N:51", "N:52"}},
			},
			want: map[string]int64{"N": 52},
		},
		{
			name: "unknown conversation with nothing sent takes last_seq",
			steps: []step{
				{op: "sync", last: map[string]int64{"E": 0, "F": 7}},
				{op: "push", conv: "F", seqs: []int64{7, 8}, release: []string{"F:8"}},
			},
			want: map[string]int64{"E": 0, "F": 8},
		},
		{
			name:   "unknown conversation live: first message is the baseline",
			synced: true,
			steps: []step{
				{op: "push", conv: "N", seqs: []int64{1, 2}, release: []string{"N:1", "N:2"}},
				{op: "push", conv: "M", seqs: []int64{57, 58}, release: []string{"M:57", "M:58"}},
			},
			want: map[string]int64{"N": 2, "M": 58},
		},
		{
			name:    "reconnect: new sync holds, then completes",
			cursors: map[string]int64{"A": 1},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{2}, release: []string{"A:2"}},
				{op: "begin"},
				{op: "push", conv: "A", seqs: []int64{5}},
				{op: "push", conv: "A", seqs: []int64{3, 4}, release: []string{"A:3", "A:4", "A:5"}},
				{op: "sync", last: map[string]int64{"A": 5}},
			},
			want: map[string]int64{"A": 5},
		},
		{
			name:    "fill failure retries then gives up and releases what is held",
			cursors: map[string]int64{"A": 1},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{3, 4}, fills: []string{"A>1"}},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "fail", conv: "A", release: []string{"A:3", "A:4"}},
				{op: "push", conv: "A", seqs: []int64{5}, release: []string{"A:5"}},
			},
			want: map[string]int64{"A": 5},
		},
		{
			name:    "permanent fill failure gives up at once",
			cursors: map[string]int64{"A": 1},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{3}, fills: []string{"A>1"}},
				{op: "fail", conv: "A", permanent: true, release: []string{"A:3"}},
			},
			want: map[string]int64{"A": 3},
		},
		{
			name:    "fill that makes no progress stalls, then gives up",
			cursors: map[string]int64{"A": 1},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{3}, fills: []string{"A>1"}},
				{op: "page", conv: "A", next: "A>1", stalled: true},
				{op: "page", conv: "A", next: "A>1", stalled: true},
				{op: "page", conv: "A", next: "A>1", stalled: true},
				{op: "page", conv: "A", next: "A>1", stalled: true},
				{op: "page", conv: "A", next: "A>1", stalled: true},
				{op: "page", conv: "A", release: []string{"A:3"}, stalled: true},
			},
			want: map[string]int64{"A": 3},
		},
		{
			name:    "progress resets the stall count",
			cursors: map[string]int64{"A": 0},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{9}, fills: []string{"A>0"}},
				{op: "fail", conv: "A", next: "A>0"},
				{op: "fail", conv: "A", next: "A>0"},
				{op: "page", conv: "A", seqs: []int64{1}, hasMore: true, release: []string{"A:1"}, next: "A>1"},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "fail", conv: "A", next: "A>1"},
				{op: "page", conv: "A", seqs: seqRange(2, 8), release: relRange("A", 2, 9)},
			},
			want: map[string]int64{"A": 9},
		},
		{
			name:    "aborted fill can be requested again",
			cursors: map[string]int64{"A": 0},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{3}, fills: []string{"A>0"}},
				{op: "abort", conv: "A"},
				{op: "push", conv: "A", seqs: []int64{4}, fills: []string{"A>0"}},
				{op: "page", conv: "A", seqs: []int64{1, 2}, release: []string{"A:1", "A:2", "A:3", "A:4"}},
			},
			want: map[string]int64{"A": 4},
		},
		{
			name:    "gap while a fill runs is covered by the same fill",
			cursors: map[string]int64{"A": 0},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{2}, fills: []string{"A>0"}},
				{op: "page", conv: "A", seqs: []int64{1}, hasMore: true, release: []string{"A:1", "A:2"}, next: "A>2"},
				{op: "push", conv: "A", seqs: []int64{5}}, // new gap (3,4) while filling: no second fill
				{op: "page", conv: "A", seqs: []int64{3, 4}, release: []string{"A:3", "A:4", "A:5"}},
			},
			want: map[string]int64{"A": 5},
		},
		{
			name:    "invalid messages ignored",
			cursors: map[string]int64{"A": 0},
			synced:  true,
			steps: []step{
				{op: "push", conv: "A", seqs: []int64{0, -1}},
				{op: "push", conv: "", seqs: []int64{1}},
				{op: "push", conv: "A", seqs: []int64{1}, release: []string{"A:1"}},
			},
			want: map[string]int64{"A": 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSequencer(tc.cursors)
			if tc.synced {
				s.syncComplete(SyncComplete{})
			}
			for i, st := range tc.steps {
				var (
					rel   []Message
					fills []fillRequest
					next  *fillRequest
					stall bool
				)
				switch st.op {
				case "push":
					for _, seq := range st.seqs {
						r, f := s.push(msg(st.conv, seq))
						rel = append(rel, r...)
						fills = append(fills, f...)
					}
				case "begin":
					s.beginSync()
				case "sync":
					rel, fills = s.syncComplete(SyncComplete{Conversations: st.last, Truncated: st.truncated})
				case "page":
					rel, next, stall = s.fillPage(st.conv, page(st.conv, st.seqs...), st.hasMore)
				case "fail":
					rel, next = s.fillFailed(st.conv, st.permanent)
				case "abort":
					s.fillAborted(st.conv)
				default:
					t.Fatalf("bad op %q", st.op)
				}
				if got, want := fmtMsgs(rel), orNil(st.release); !slices.Equal(got, want) {
					t.Fatalf("step %d (%s %s %v): released %v, want %v", i, st.op, st.conv, st.seqs, got, want)
				}
				if got, want := fmtFills(fills), orNil(st.fills); !slices.Equal(got, want) {
					t.Fatalf("step %d (%s %s %v): fills %v, want %v", i, st.op, st.conv, st.seqs, got, want)
				}
				if st.op == "page" || st.op == "fail" {
					if got := fmtNext(next); got != st.next {
						t.Fatalf("step %d (%s %s): next fill %q, want %q", i, st.op, st.conv, got, st.next)
					}
				}
				if st.op == "page" && stall != st.stalled {
					t.Fatalf("step %d: stalled %v, want %v", i, stall, st.stalled)
				}
			}
			got := s.cursors()
			if len(got) != len(tc.want) {
				t.Fatalf("cursors %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("cursors %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func relRange(conv string, from, to int64) []string {
	var out []string
	for s := from; s <= to; s++ {
		out = append(out, fmt.Sprintf("%s:%d", conv, s))
	}
	return out
}

// TestSequencerExactlyOnceRandom feeds random interleavings of live pushes,
// duplicates and fill pages and checks every seq is released once, in order.
func TestSequencerExactlyOnceRandom(t *testing.T) {
	const n = 300
	for seed := uint64(1); seed <= 200; seed++ {
		r := newTestRand(seed)
		s := newSequencer(map[string]int64{"A": 0})
		s.syncComplete(SyncComplete{})
		var released []int64
		var fill *fillRequest
		collect := func(ms []Message, fs []fillRequest) {
			for _, m := range ms {
				released = append(released, m.Seq)
			}
			for i := range fs {
				if fill != nil {
					t.Fatalf("seed %d: second fill requested while one runs", seed)
				}
				f := fs[i]
				fill = &f
			}
		}
		// Live arrivals: each seq once, some twice, with local reordering;
		// about one in five lost (only a fill brings it). The last one always
		// arrives: a lost tail is only found by the next sync.
		var live []int64
		for seq := int64(1); seq <= n; seq++ {
			if seq < n && r.intn(5) == 0 {
				continue
			}
			live = append(live, seq)
			if r.intn(10) == 0 {
				live = append(live, seq)
			}
		}
		for i := range live {
			if j := i + r.intn(4); j < len(live) {
				live[i], live[j] = live[j], live[i]
			}
		}
		var top int64 // the server's last seq so far
		for _, seq := range live {
			top = max(top, seq)
			collect(s.push(msg("A", seq)))
			if fill != nil && r.intn(3) == 0 {
				// Answer the fill with a page of up to 7 messages that exist so far.
				f := *fill
				fill = nil
				hi := min(f.After+int64(1+r.intn(7)), top)
				rel, next, _ := s.fillPage("A", page("A", seqRange(f.After+1, hi)...), hi < top)
				collect(rel, nil)
				if next != nil {
					fill = next
				}
			}
		}
		for fill != nil {
			f := *fill
			fill = nil
			rel, next, _ := s.fillPage("A", page("A", seqRange(f.After+1, min(f.After+50, n))...), f.After+50 < n)
			collect(rel, nil)
			fill = next
		}
		if int64(len(released)) != n {
			t.Fatalf("seed %d: released %d messages, want %d", seed, len(released), n)
		}
		for i, seq := range released {
			if seq != int64(i+1) {
				t.Fatalf("seed %d: release %d is seq %d", seed, i, seq)
			}
		}
	}
}

// testRand is a tiny deterministic generator (xorshift) for reproducible tests.
type testRand struct{ x uint64 }

func newTestRand(seed uint64) *testRand { return &testRand{x: seed*0x9E3779B97F4A7C15 + 1} }

func (r *testRand) intn(n int) int {
	r.x ^= r.x << 13
	r.x ^= r.x >> 7
	r.x ^= r.x << 17
	return int(r.x % uint64(n))
}
