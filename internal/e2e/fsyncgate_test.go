package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/internal/powerfs"
)

// TestFailedFsyncFailStop: one fsync of the write-ahead log returns EIO
// (powerfs, which then drops the pages as Linux does, so a retried fsync
// would succeed without them). parleyd must not ack the messages that
// commit held, must not go on as if the data were durable: it logs a
// STORE FAIL-STOP error, /readyz answers 503 and every later send fails,
// until a restart. After a power cut and the restart, every message that
// was acked is there at its seq, and no other one.
func TestFailedFsyncFailStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds parleyd")
	}
	pfs := powerfs.MountForTest(t, powerfs.Options{})
	proc := newParleydProc(t, buildParleyd(t))
	proc.dataDir = pfs.Dir()
	proc.afterKill = pfs.CutPower
	t.Cleanup(pfs.CutPower)
	proc.start()
	srv := proc.srv
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	conv := &crashConv{name: "direct", id: direct(t, srv, alice, bob), reader: alice,
		sent: map[string]sentMsg{}, known: map[string]storedMsg{}}
	ws := dialStream(t, srv.WSURL, alice.Token)

	send := func(id string) (ackFrame, string) {
		t.Helper()
		content := "fsyncgate " + id
		conv.sent[id] = sentMsg{senderID: alice.UserID, content: content}
		raw, _ := json.Marshal(sendText(conv.id, id, content))
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := ws.Write(ctx, websocket.MessageText, raw); err != nil {
			t.Fatal(err)
		}
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for the answer to %s: %v", id, err)
			}
			var f ackFrame
			_ = json.Unmarshal(data, &f)
			if f.Type == "ack" && f.MessageID == id {
				conv.known[id] = storedMsg{seq: f.Seq, serverID: f.ServerMessageID}
				return f, ""
			}
			if f.Type == "error" {
				return f, string(data)
			}
		}
	}
	for i := range 5 {
		if _, e := send(fmt.Sprintf("before-%d", i)); e != "" {
			t.Fatalf("send before the failure: %s", e)
		}
	}
	pfs.FailNextFsync("parley.db-wal")
	failedAt := -1
	for i := range 20 {
		if _, e := send(fmt.Sprintf("during-%d", i)); e != "" {
			failedAt = i
			t.Logf("the send whose commit fsync failed got: %s", e)
			break
		}
	}
	if failedAt < 0 || len(pfs.FailedFsyncs()) != 1 {
		t.Fatalf("no send failed (failed fsyncs: %v)", pfs.FailedFsyncs())
	}
	if _, e := send("after"); e == "" {
		t.Error("a send after the failed fsync was acked: the store must refuse writes until restart")
	}
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz after the failed fsync: %d %q, want 503", resp.StatusCode, body)
	}
	if log := proc.logTail(1 << 20); !strings.Contains(log, "STORE FAIL-STOP") {
		t.Errorf("parleyd's log does not say it stopped writing:\n%s", proc.logTail(3000))
	}
	_ = ws.CloseNow()
	proc.kill()
	if err := pfs.Crash(); err != nil {
		t.Fatal(err)
	}
	checkStoreIntegrity(t, proc.dataDir)
	proc.start()
	stored := verifyHistory(t, proc.srv, conv) // every acked message at its seq
	for id := range stored {
		if _, ok := conv.known[id]; !ok {
			t.Logf("%s was not acked but is stored (its commit reached the disk after all)", id)
		}
	}
	t.Logf("%d acked before the failed fsync, all kept after the power cut; %d stored in all", len(conv.known), len(stored))
}
