package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/powerfs"
)

// TestPowerLossDurability is TestCrashDurability with the power cut as
// well: parleyd's --data-dir is on a powerfs mount, and at the kill -9 the
// filesystem loses everything that was not fsynced (file data since its last
// fsync, directory entries since their directory's last fsync, with torn
// writes: a random half of the unsynced pages did reach the disk). A store
// that acked before its fsync, or never fsynced at all, passes the kill -9
// loop (the page cache keeps its writes) and fails this one.
//
// Each cycle streams pipelined sends from seven sockets into a direct and a
// group conversation, cuts the power at one of these moments, restarts
// parleyd on what survived, and checks (with the crash test's helpers) every
// acked message at its seq and server id, seqs 1..N with no gap, the store's
// integrity check, and that every unacked message resent lands exactly once:
//
//   - stream: 100-400 ms after the first ack, wherever the server is;
//   - commit: one of the first four write-ahead log fsyncs after the
//     stream's first ack is frozen (the commit's frames are written, not
//     synced) and the power goes while it hangs;
//   - checkpoint: the first write into parley.db itself after the first
//     ack (only a WAL checkpoint writes there) is frozen mid-checkpoint;
//   - startup: after the restart, a second cut 0-150 ms into the next start
//     (WAL recovery, migrations), before the server is ready;
//   - upload: the fsync of a whole media upload's blob is frozen;
//   - patch: the fsync of a resumable upload's 2nd-4th PATCH is frozen.
//
// Through every cycle but commit and checkpoint a fifth user uploads files both ways (POST
// /api/v1/media and tus PATCHes of 16 KiB, see powerMedia): after each cut
// every upload answered complete downloads byte for byte, and every
// resumable one still holds at least the offset its last PATCH answered and
// completes from there. A sixth device, of erin's, marks the group read as
// fast as it can: her stored read watermark is never below the highest one
// the server announced to her other device before the cut.
//
// A freeze that no write reached by the kill leaves a plain stream cut; the
// log says which happened. PARLEY_POWERLOSS_ITERATIONS sets the number of
// cycles (default 6, one of each); every 10 cycles the senders move to a
// new pair of conversations, so a long run's checks stay bounded.
func TestPowerLossDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds parleyd and cuts its power repeatedly")
	}
	pfs := powerfs.MountForTest(t, powerfs.Options{TornWrites: true})
	scenarios := []string{"stream", "commit", "checkpoint", "startup", "upload", "patch"}
	iterations := len(scenarios)
	if v := os.Getenv("PARLEY_POWERLOSS_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PARLEY_POWERLOSS_ITERATIONS=%q: want a positive integer", v)
		}
		iterations = n
	}
	began := time.Now()
	proc := newParleydProc(t, buildParleyd(t))
	proc.dataDir = pfs.Dir()
	proc.extra = []string{"--group-commit=true"}
	proc.afterKill = pfs.CutPower
	t.Cleanup(pfs.CutPower) // before the process cleanup: a frozen parleyd dies only then
	proc.start()
	srv := proc.srv

	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	carol, dave := newAccount(t, srv, "carol"), newAccount(t, srv, "dave")
	erin := newAccount(t, srv, "erin")
	uploads := newPowerMedia(erin.Token)
	device := func(a account) account { a.login(t, srv); return a }
	receipts := &powerReceipts{reader: erin, echo: device(erin)}
	senders := []*crashSender{
		{name: "a1", acct: alice}, {name: "a2", acct: device(alice)}, {name: "b1", acct: bob},
		{name: "a3", acct: device(alice)}, {name: "b2", acct: device(bob)}, {name: "c1", acct: carol}, {name: "d1", acct: dave},
	}
	var dm, grp *crashConv
	var convs []*crashConv
	// fresh gives the senders a new direct and group conversation: every
	// convLife cycles, so the history each check reads stays bounded in a
	// long run (each conversation is still checked across convLife cuts).
	const convLife = 10
	fresh := func(n int) {
		dm = &crashConv{name: "direct", reader: alice}
		if n == 0 {
			dm.id = direct(t, srv, alice, bob)
		} else { // alice and bob have one direct conversation: a group of the two
			dm.name, dm.id = fmt.Sprintf("pair%d", n), group(t, srv, alice, fmt.Sprintf("pair%d", n), bob)
		}
		grp = &crashConv{name: fmt.Sprintf("group%d", n), id: group(t, srv, alice, fmt.Sprintf("power%d", n), bob, carol, dave, erin), reader: carol}
		receipts.conv, receipts.announced = grp.id, 0
		convs = []*crashConv{dm, grp}
		for _, c := range convs {
			c.sent = map[string]sentMsg{}
			c.known = map[string]storedMsg{}
		}
		for i, s := range senders {
			s.conv = dm
			if i >= 3 {
				s.conv = grp
			}
		}
	}
	fresh(0)

	var totalAcked, totalUnacked, froze, files int
	for it := 1; it <= iterations; it++ {
		if it > 1 && (it-1)%convLife == 0 {
			fresh(it / convLife)
		}
		scenario := scenarios[(it-1)%len(scenarios)]
		var hit <-chan string
		proc.afterFirstAck = nil
		switch scenario {
		case "commit":
			// Armed once the stream has acks: a commit frozen before the
			// first one would keep the stream from ever starting.
			proc.afterFirstAck = func() { hit = pfs.Freeze("parley.db-wal", true, rand.IntN(4)) }
		case "checkpoint":
			proc.afterFirstAck = func() { hit = pfs.Freeze("parley.db", false, 0) }
		case "upload":
			hit = pfs.Freeze("media/.tmp/*", true, 0)
		case "patch":
			hit = pfs.Freeze("uploads/*.bin", true, 1+rand.IntN(3))
		}
		stopUploads := make(chan struct{})
		var uploading sync.WaitGroup
		if scenario != "commit" && scenario != "checkpoint" {
			// Not beside a frozen commit: an upload's or a receipt's own
			// commit could take the freeze before the stream's first ack.
			uploading.Go(func() { uploads.run(srv.URL, stopUploads) })
			uploading.Go(func() { receipts.run(srv.WSURL, stopUploads) })
		}
		st := runCrashStream(t, proc, it, senders)
		close(stopUploads)
		uploading.Wait() // the server is gone: its requests have failed
		if t.Failed() {
			t.FailNow()
		}
		where := scenario
		if hit != nil {
			select {
			case p := <-hit:
				froze++
				where += " (frozen at " + p + ")"
			default:
				where += " (no write reached the freeze: a stream cut)"
			}
		}
		if err := pfs.Crash(); err != nil {
			t.Fatal(err)
		}
		checkStoreIntegrity(t, proc.dataDir)

		if scenario == "startup" {
			addr := strings.TrimPrefix(proc.srv.URL, "http://")
			proc.spawn(addr)
			time.Sleep(rand.N(150 * time.Millisecond)) // where the cut lands, not an assertion
			if proc.running() {
				proc.kill()
				where += " (cut during start-up)"
			} else {
				t.Fatalf("parleyd exited during start-up before the cut: %v\n%s", proc.waitErr, proc.logTail(4000))
			}
			if err := pfs.Crash(); err != nil {
				t.Fatal(err)
			}
			checkStoreIntegrity(t, proc.dataDir)
		}

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
		checked := uploads.verify(t, srv)
		files += checked
		watermark := receipts.verify(t, srv)
		if t.Failed() {
			t.FailNow()
		}
		resent := 0
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
		t.Logf("power cut %d/%d, %s: %d frames written, %d acked, all kept; of the %d unacked %d had been stored, %d were lost; %d resent, each stored once; restart ready in %v; history direct=%d group=%d; %d uploads answered complete, all intact; read watermark %d announced, kept",
			it, iterations, where, st.sent, st.acked, st.sent-st.acked, storedUnacked, lost, resent, restart.Round(time.Millisecond), len(dm.stored), len(grp.stored), checked, watermark)
	}
	s := pfs.Stats()
	t.Logf("%d power cuts in %v (%d at a frozen write): %d messages acked mid-stream, lost 0; %d unacked ones resent, each stored exactly once; %d uploads answered complete, all intact; powerfs saw %d file fsyncs, %d directory fsyncs",
		iterations, time.Since(began).Round(time.Millisecond), froze, totalAcked, totalUnacked, files, s.FileSyncs, s.DirSyncs)
}
