package loadgen

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// runPairsSmoke runs the pairs scenario at a tiny size and checks that every
// message sent was acked and delivered once, with latencies and figures.
func runPairsSmoke(t *testing.T, o *Options) *Result {
	t.Helper()
	out := t.TempDir()
	var log bytes.Buffer
	o.InProcess, o.Quick, o.OutDir, o.Log, o.Timeout = true, true, out, &log, 2*time.Minute
	o.Pairs, o.PairRate, o.Duration, o.AccountsPath = 3, 5, time.Second, filepath.Join(out, "accounts.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results, err := RunScenarios(ctx, o, []*Scenario{pairsScenario})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	res := results[0]
	st := res.phase("steady")
	if st == nil || st.Counters["sent"] == 0 || st.Counters["acked"] != st.Counters["sent"] || st.Counters["delivered"] != st.Counters["sent"] {
		t.Fatalf("steady phase: %+v\n%s", st, log.String())
	}
	if st.Latency["ack"].Count != st.Counters["acked"] || st.Latency["delivery"].Count != st.Counters["delivered"] {
		t.Errorf("latencies not recorded for every message: %+v", st.Latency)
	}
	if res.Params["pairs"] != 3 {
		t.Errorf("params %v", res.Params)
	}
	names := map[string]bool{}
	for _, f := range res.Figures {
		names[f.Name] = true
	}
	for _, want := range []string{"offered", "acked per second (achieved)", "saturated", "ack p99.9", "delivery p99", "delivery max"} {
		if !names[want] {
			t.Errorf("no figure %q in %v", want, res.Figures)
		}
	}
	return res
}

// TestPairsSmoke runs pairs against an in-process Parley.
func TestPairsSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few seconds of load")
	}
	srv := servertest.Start(t)
	res := runPairsSmoke(t, &Options{URL: srv.URL})
	if res.Server.Software != ProtoParley {
		t.Errorf("software %q", res.Server.Software)
	}
}

// TestPairsCentrifugo runs pairs against a Centrifugo the generator starts,
// when the binary is installed.
func TestPairsCentrifugo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few seconds of load")
	}
	if _, err := FindCentrifugo(""); err != nil {
		t.Skipf("skipping the Centrifugo driver test: %v", err)
	}
	res := runPairsSmoke(t, &Options{StartServer: true, Target: ProtoCentrifugo})
	if res.Server.Software != ProtoCentrifugo || res.Server.PID == 0 {
		t.Errorf("server %+v", res.Server)
	}
}

// TestCentrifugoNeedsPairs refuses scenarios that speak only Parley's
// protocol, and a target it does not know.
func TestCentrifugoNeedsPairs(t *testing.T) {
	o := &Options{StartServer: true, Target: ProtoCentrifugo, Log: &bytes.Buffer{}}
	if _, err := RunScenarios(context.Background(), o, []*Scenario{chatScenario}); err == nil || !strings.Contains(err.Error(), "Parley only") {
		t.Errorf("chat against centrifugo: %v", err)
	}
	o = &Options{StartServer: true, Target: "nats", Log: &bytes.Buffer{}}
	if _, err := RunScenarios(context.Background(), o, []*Scenario{pairsScenario}); err == nil || !strings.Contains(err.Error(), "--target") {
		t.Errorf("unknown target: %v", err)
	}
	if _, err := FindCentrifugo(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrNoCentrifugo) {
		t.Errorf("missing binary: %v", err)
	}
}

// TestCentrifugoFrames checks the publish frame, batched replies, pushes,
// error replies and the ping answer against a socket without a connection.
func TestCentrifugoFrames(t *testing.T) {
	wk := &Worker{job: Job{Proto: ProtoCentrifugo}}
	wk.resetPhase("t", false)
	s := &socket{w: wk, ackSig: make(chan struct{}, 1)}
	s.cf.pending = map[uint32]int64{}
	s.cf.next.Store(cfFirstID - 1)
	stamp := time.Now().Add(-time.Millisecond).UnixNano()
	f := s.appendPublish(nil, "r1", stamp, pairBytes)
	if !bytes.HasPrefix(f, []byte(`{"id":3,"publish":{"channel":"r1","data":"`)) {
		t.Fatalf("publish frame %s", f)
	}
	if data := stringField(f, "data"); len(data) != pairBytes {
		t.Errorf("data is %d bytes, want %d: %s", len(data), pairBytes, data)
	}
	g := s.appendPublish(nil, "r1", stamp, pairBytes)
	// Two replies and a push batched in one frame, a line each.
	batch := []byte(`{"id":3,"publish":{}}` + "\n" + `{"id":4,"error":{"code":103,"message":"permission denied"}}` + "\n" +
		`{"push":{"channel":"s1","pub":{"data":"` + string(stringField(g, "data")) + `","offset":1}}}`)
	s.handleCentrifugo(batch)
	d := wk.done()
	if d.Counters["acked"] != 1 || d.Counters["errors"] != 1 || d.Counters["delivered"] != 1 {
		t.Errorf("counters %v", d.Counters)
	}
	if d.Hists["ack"] == nil || d.Hists["ack"].Count != 1 || d.Hists["delivery"] == nil || d.Hists["delivery"].Count != 1 {
		t.Errorf("histograms %v", d.Hists)
	}
	if len(s.cf.pending) != 0 {
		t.Errorf("pending after the replies: %v", s.cf.pending)
	}
	s.handleCentrifugo([]byte(`{}`))
	if c := wk.done().Counters["pongs"]; c != 1 {
		t.Errorf("ping not answered: pongs=%d", c)
	}
}

// TestCentrifugoToken checks the JWT's shape and HS256 signature.
func TestCentrifugoToken(t *testing.T) {
	tok := centrifugoToken("k", "u1", time.Unix(2000000000, 0))
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || string(claims) != `{"exp":2000000000,"sub":"u1"}` {
		t.Errorf("claims %s %v", claims, err)
	}
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != parts[2] {
		t.Error("bad signature")
	}
}

// TestSummarizeRuns checks median, min and max over runs.
func TestSummarizeRuns(t *testing.T) {
	rs := []*Result{
		{Scenario: "pairs", Figures: []Figure{{Name: "ack p99", Value: 3}}},
		{Scenario: "pairs", Figures: []Figure{{Name: "ack p99", Value: 1}}},
		{Scenario: "pairs", Figures: []Figure{{Name: "ack p99", Value: 9}}, Error: "boom"},
	}
	rep := summarizeRuns(rs)
	if len(rep.Figures) != 1 || rep.Figures[0].Median != 3 || rep.Figures[0].Min != 1 || rep.Figures[0].Max != 9 {
		t.Errorf("figures %+v", rep.Figures)
	}
	if rep.Runs != 3 || len(rep.Errors) != 1 {
		t.Errorf("runs %d errors %v", rep.Runs, rep.Errors)
	}
}
