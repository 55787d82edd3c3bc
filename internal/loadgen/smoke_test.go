package loadgen

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// TestSmoke runs the chat and storm scenarios at their tiny --quick sizes
// against an in-process server, with in-process workers, and checks that
// messages flowed and the result files were written.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few seconds of load")
	}
	srv := servertest.Start(t)
	out := t.TempDir()
	var log bytes.Buffer
	o := &Options{URL: srv.URL, InProcess: true, Quick: true, OutDir: out, Log: &log, Timeout: 2 * time.Minute,
		Sockets: 6, Duration: time.Second, AccountsPath: filepath.Join(out, "accounts.json")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results, err := RunScenarios(ctx, o, []*Scenario{chatScenario, stormScenario})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	chat := results[0]
	st := chat.phase("steady")
	if st == nil || st.Counters["sent"] == 0 || st.Counters["acked"] != st.Counters["sent"] || st.Counters["delivered"] != st.Counters["sent"] {
		t.Fatalf("chat steady phase: %+v\n%s", st, log.String())
	}
	if st.Latency["ack"].Count == 0 || st.Latency["delivery"].P99 <= 0 {
		t.Errorf("no latencies: %+v", st.Latency)
	}
	if storm := results[1].phase("storm"); storm == nil || storm.Counters["synced"] != 6 {
		t.Fatalf("storm: %+v\n%s", storm, log.String())
	}
	for _, name := range []string{"chat.json", "chat.svg", "storm.json", "storm.svg"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.HasSuffix(name, ".svg") && !bytes.Contains(b, []byte("<svg")) {
			t.Errorf("%s is not an SVG", name)
		}
	}
	if !strings.Contains(log.String(), "sockets=6") {
		t.Errorf("no progress line in the log:\n%s", log.String())
	}
}

// TestSpreadOverNodes gives --url two addresses, the server's own and a
// reverse proxy in front of it standing in for a second node, and checks
// that the sockets were spread round robin: half of them, and one of each
// pair, came through the second address.
func TestSpreadOverNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few seconds of load")
	}
	srv := servertest.Start(t)
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var viaSecond atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/ws" {
			viaSecond.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(second.Close)
	out := t.TempDir()
	var log bytes.Buffer
	o := &Options{URL: srv.URL + ", " + second.URL + "/", InProcess: true, Quick: true, OutDir: out, Log: &log, Timeout: 2 * time.Minute,
		Sockets: 8, Duration: time.Second, AccountsPath: filepath.Join(out, "accounts.json")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results, err := RunScenarios(ctx, o, []*Scenario{chatScenario})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	st := results[0].phase("steady")
	if st == nil || st.Counters["sent"] == 0 || st.Counters["delivered"] != st.Counters["sent"] {
		t.Fatalf("chat steady phase: %+v\n%s", st, log.String())
	}
	if n := viaSecond.Load(); n != 4 {
		t.Errorf("%d of 8 sockets connected through the second URL, want 4", n)
	}
	if got := results[0].Server.URLs; len(got) != 2 || got[1] != second.URL {
		t.Errorf("result names the nodes %q", got)
	}
}

// TestWire checks the hand-built frames and the field scanner.
func TestWire(t *testing.T) {
	f := appendSend(nil, "w0s1", 7, "conv1", 1234567890123, 0)
	if got := string(stringField(f, "message_id")); got != "w0s1-7-1234567890123" {
		t.Errorf("message_id %q", got)
	}
	if at, ok := sentAtFromID(stringField(f, "message_id")); !ok || at != 1234567890123 {
		t.Errorf("sent at from id: %d %v", at, ok)
	}
	if at, ok := sentAtFromContent(stringField(f, "content")); !ok || at != 1234567890123 {
		t.Errorf("sent at from content: %d %v", at, ok)
	}
	for frame, want := range map[string]int{
		`{"type":"ack","message_id":"x"}`:             kindAck,
		`{"type":"new_message","seq":1}`:              kindNewMessage,
		`{"seq":1,"type":"sync_complete"}`:            kindSyncComplete,
		`{"type":"presence","user_id":"u"}`:           kindOther,
		`{"type":"ready","heartbeat_interval":30000}`: kindReady,
	} {
		if got := frameType([]byte(frame)); got != want {
			t.Errorf("frameType(%s) = %d, want %d", frame, got, want)
		}
	}
}
