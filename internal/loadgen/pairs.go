package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// pairBytes is the size of a pairs message's content.
const pairBytes = 64

var pairsScenario = &Scenario{
	Name:   "pairs",
	Title:  "pairs: each sender posts R msgs/s of 64 bytes to its own receiver, one direct conversation per pair, open loop",
	Target: "1,000 pairs x 5 msgs/s on one core: not saturated, ack and delivery p99 <= 10 ms, p99.9 <= 25 ms; CPU per message <= Centrifugo's (issue 13)",
	Peer:   true,
	Run:    runPairs,
}

// runPairs connects P senders and P receivers and has every sender post
// R msgs/s. Each message is stamped with its scheduled send time, so a send
// held up by a stalled server counts its wait (no coordinated omission).
func runPairs(ctx context.Context, r *Run) error {
	p := r.size(1000, 3, r.Opts.Pairs)
	per := r.Opts.PairRate
	if per <= 0 {
		per = 5
		if r.Opts.Quick {
			per = 2
		}
	}
	rate := float64(p) * per
	res := r.Result
	res.Params["pairs"], res.Params["msgs_per_second_per_sender"], res.Params["offered_msgs_per_second"] = p, per, rate
	res.Params["message_bytes"], res.Params["server"] = pairBytes, r.proto()
	socks, err := r.pairSockets(ctx, p)
	if err != nil {
		return err
	}
	f, _, err := r.connectFleet(ctx, socks)
	if err != nil {
		return err
	}
	defer f.Stop()
	send := Command{Op: OpChat, Rate: rate, Scheduled: true, Bytes: pairBytes}
	warm := send
	warm.Phase, warm.DurationMS, warm.DrainMS = "warmup", ms(r.duration(5*time.Second, 500*time.Millisecond)), 30000
	if _, err := f.Do(ctx, warm); err != nil {
		return err
	}
	d := r.duration(30*time.Second, time.Second)
	wait := r.profile(ctx, d-2*time.Second)
	steady := send
	steady.Phase, steady.DurationMS, steady.DrainMS = "steady", ms(d), 60000
	st, err := f.Do(ctx, steady)
	wait()
	if err != nil {
		return err
	}
	r.pairsFigures(st, rate, d)
	r.noteLimits(st, r.cores())
	res.Picture = Picture{Phase: "steady", Hists: []string{"ack", "delivery"}, Rate: []string{"acked", "delivered"}}
	return nil
}

// pairSockets returns sender i at 2i and its receiver at 2i+1: for Parley,
// accounts logged in and a direct conversation per pair; for Centrifugo,
// connection tokens and a channel per receiver.
func (r *Run) pairSockets(ctx context.Context, p int) ([]SockSpec, error) {
	socks := make([]SockSpec, 2*p)
	if r.proto() == ProtoCentrifugo {
		exp := time.Now().Add(24 * time.Hour)
		for i := range p {
			s, rc := "s"+strconv.Itoa(i), "r"+strconv.Itoa(i)
			socks[2*i] = SockSpec{Token: centrifugoToken(r.secret, s, exp), User: s, Convs: []string{rc}}
			socks[2*i+1] = SockSpec{Token: centrifugoToken(r.secret, rc, exp), User: rc}
		}
		return socks, nil
	}
	us, convs, err := r.pairs(ctx, 2*p)
	if err != nil {
		return nil, err
	}
	for i := range p {
		socks[2*i] = SockSpec{Token: us[2*i].Token, User: us[2*i].ID, Convs: []string{convs[i]}}
		socks[2*i+1] = SockSpec{Token: us[2*i+1].Token, User: us[2*i+1].ID}
	}
	return socks, nil
}

// proto is the client protocol of the server under test.
func (r *Run) proto() string {
	if r.Opts.Target == ProtoCentrifugo {
		return ProtoCentrifugo
	}
	return ProtoParley
}

// pairsFigures reports the steady phase: throughput against the offer,
// saturation, latencies and what the server spent.
func (r *Run) pairsFigures(st *Phase, rate float64, d time.Duration) {
	res := r.Result
	sent, acked, delivered := st.Counters["sent"], st.Counters["acked"], st.Counters["delivered"]
	// Over the whole phase, drain included (less the half second of quiet
	// that ends it): the drain waits, up to a minute, for the acks of a
	// backlog, which stretches the phase.
	got := float64(acked) / max(d.Seconds(), st.Seconds-0.5)
	saturated := got < 0.95*rate || acked < sent || st.Counters["skipped"] > 0
	res.figure("offered", rate, "msgs/s", "", nil, fmt.Sprintf("%d sockets, %.0f s", st.Open(), d.Seconds()))
	res.figure("acked per second (achieved)", got, "msgs/s", fmt.Sprintf(">= %.0f", 0.95*rate), atLeast(got, 0.95*rate),
		fmt.Sprintf("%d sent, %d acked, %d delivered in %.1f s", sent, acked, delivered, st.Seconds))
	res.figure("saturated", b2f(saturated), "", "0", atMost(b2f(saturated), 0), "achieved < 95% of offered, unacked messages after the drain, or sends skipped")
	ack, del := st.Latency["ack"], st.Latency["delivery"]
	for _, l := range []struct {
		name string
		s    Summary
	}{{"ack", ack}, {"delivery", del}} {
		res.figure(l.name+" p50", l.s.P50, "ms", "", nil, "from the scheduled send time")
		res.figure(l.name+" p99", l.s.P99, "ms", "<= 10", atMost(l.s.P99, 10), "")
		res.figure(l.name+" p99.9", l.s.P999, "ms", "<= 25", atMost(l.s.P999, 25), "")
		res.figure(l.name+" max", l.s.Max, "ms", "", nil, "")
	}
	if st.Server != nil {
		res.figure("server CPU per message", st.Server.CPUPerMessageUS, "µs", "", nil, fmt.Sprintf("utime+stime over the phase / messages acked; %.0f%% of a core", st.Server.CPUPercent))
		res.figure("server CPU", st.Server.CPUPercent, "% of a core", "", nil, "")
		res.figure("server RSS", st.Server.RSSEndMB, "MB", "", nil, fmt.Sprintf("%.0f MB at the phase's start", st.Server.RSSStartMB))
	}
	res.figure("generator send lag p99", st.Latency["lag"].P99, "ms", "", nil, "how late sends left against the schedule")
	res.figure("generator CPU", st.Generator, "% of a core", "", nil, "worker processes")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
