package loadgen

import (
	"context"
	"fmt"
	"time"
)

// ms is a duration in milliseconds, for Command fields.
func ms(d time.Duration) int64 { return d.Milliseconds() }

// connectFleet starts workers for socks and opens every socket.
func (r *Run) connectFleet(ctx context.Context, socks []SockSpec) (*Fleet, *Phase, error) {
	f, err := r.StartFleet(ctx, socks)
	if err != nil {
		return nil, nil, err
	}
	ph, err := f.Do(ctx, Command{Op: OpConnect, Phase: "connect", Concurrent: 100, TimeoutMS: ms(5 * time.Minute)})
	if err != nil {
		f.Stop()
		return nil, ph, err
	}
	if failed := ph.Counters["connect_failed"]; failed > 0 {
		r.Result.Limits = append(r.Result.Limits, fmt.Sprintf("%d of %d sockets failed to connect: %v", failed, len(socks), ph.Errors))
	}
	return f, ph, nil
}

// pairs returns n accounts of pool "u" and the direct conversation of each
// pair (2i, 2i+1).
func (r *Run) pairs(ctx context.Context, n int) ([]Account, []string, error) {
	us, err := r.users(ctx, "u", n)
	if err != nil {
		return nil, nil, err
	}
	convs := make([]string, n/2)
	start := time.Now()
	err = parallel(ctx, 0, n/2, 32, func(ctx context.Context, i int) error {
		id, err := r.Acc.Direct(ctx, r.api, fmt.Sprintf("d:u:%d", 2*i), us[2*i], us[2*i+1])
		convs[i] = id
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if el := time.Since(start); el > time.Second {
		r.logf("setup: %d direct conversations in %s", n/2, el.Round(time.Millisecond))
	}
	return us, convs, r.Acc.Save()
}

// pairedFleet connects n sockets of pool "u", each in its pair's direct
// conversation.
func (r *Run) pairedFleet(ctx context.Context, n int) (*Fleet, error) {
	us, convs, err := r.pairs(ctx, n)
	if err != nil {
		return nil, err
	}
	socks := make([]SockSpec, n)
	for i, u := range us {
		socks[i] = SockSpec{Token: u.Token, User: u.ID, Convs: []string{convs[i/2]}}
	}
	f, _, err := r.connectFleet(ctx, socks)
	return f, err
}

// generic limits seen in a phase.
func (r *Run) noteLimits(ph *Phase, cores float64) {
	if ph == nil {
		return
	}
	if ph.Server != nil && ph.Server.CPUPercent > 85*cores {
		r.Result.Limits = append(r.Result.Limits, fmt.Sprintf("%s: server CPU-bound (%.0f%% of one core)", ph.Name, ph.Server.CPUPercent))
	}
	if lag, ok := ph.Latency["lag"]; ok && lag.P99 > 5 {
		r.Result.Limits = append(r.Result.Limits, fmt.Sprintf("%s: the generator sent late against its schedule (lag p99 %.1f ms): it shares the cores with the server", ph.Name, lag.P99))
	}
	if n := ph.Counters["late"]; n > 0 {
		r.Result.Limits = append(r.Result.Limits, fmt.Sprintf("%s: %d operations skipped because every slot was busy (offered load above what was served)", ph.Name, n))
	}
	if ph.ListenDrops > 0 {
		r.Result.Limits = append(r.Result.Limits, fmt.Sprintf("%s: the kernel dropped %.0f SYNs: the listen queue (somaxconn 4096) overflowed while the server was short of CPU; those clients retried after 1 s and 3 s", ph.Name, ph.ListenDrops))
	}
	if ph.Machine > 95 && ph.Server != nil && ph.Generator > 0 && ph.Server.CPUPercent+ph.Generator < 0.8*ph.Machine*float64(r.Result.Machine.CPUs) {
		r.Result.Limits = append(r.Result.Limits, fmt.Sprintf("%s: the machine was saturated (%.0f%% busy) and other processes used %.0f%% of a core: server and generator were starved", ph.Name, ph.Machine, ph.Machine*float64(r.Result.Machine.CPUs)-ph.Server.CPUPercent-ph.Generator))
	}
	if n := ph.Counters["closed"]; n > 0 {
		r.Result.Limits = append(r.Result.Limits, fmt.Sprintf("%s: the server closed %d sockets: %v", ph.Name, n, ph.Errors))
	}
}

func (r *Run) cores() float64 {
	if r.Opts.ServerCPUs != "" {
		return 1
	}
	return 2
}

var idleScenario = &Scenario{
	Name:   "idle",
	Title:  "idle density: authenticated sockets held open",
	Target: "19,000 sockets; server RSS growth <= 6 KB per socket (stretch 3 KB); idle CPU <= 2% of a core",
	Run: func(ctx context.Context, r *Run) error {
		n := r.size(19000, 20, r.Opts.Sockets)
		r.Result.Params["sockets"] = n
		us, err := r.users(ctx, "u", n)
		if err != nil {
			return err
		}
		socks := make([]SockSpec, n)
		for i, u := range us {
			socks[i] = SockSpec{Token: u.Token, User: u.ID}
		}
		time.Sleep(2 * time.Second) // let the setup's garbage be collected
		before := r.sample()
		m0, _ := ScrapeAll(ctx, r.URLs)
		f, conn, err := r.connectFleet(ctx, socks)
		if err != nil {
			return err
		}
		defer f.Stop()
		if _, err := f.Do(ctx, Command{Op: OpIdle, Phase: "settle", DurationMS: ms(r.duration(10*time.Second, time.Second))}); err != nil {
			return err
		}
		idleFor := r.duration(30*time.Second, time.Second)
		wait := r.profile(ctx, idleFor-time.Second)
		idle, err := f.Do(ctx, Command{Op: OpIdle, Phase: "idle", DurationMS: ms(idleFor)})
		wait()
		if err != nil {
			return err
		}
		after := r.sample()
		m1, _ := ScrapeAll(ctx, r.URLs)
		open := idle.Open()
		res := r.Result
		res.figure("sockets open", float64(open), "sockets", fmt.Sprintf("%d", n), atLeast(float64(open), float64(n)), "")
		res.figure("connect: all sockets", conn.Seconds, "s", "", nil, fmt.Sprintf("%.0f sockets/s", float64(open)/conn.Seconds))
		res.figure("connect p99 (dial to ready)", conn.Latency["connect"].P99, "ms", "", nil, "")
		if len(r.PIDs) > 0 && open > 0 {
			per := float64(after.RSS-before.RSS) / float64(open) / 1024
			res.figure("server RSS growth per socket", per, "KB", "<= 6 (stretch 3)", atMost(per, 6),
				fmt.Sprintf("RSS %.0f -> %.0f MB", float64(before.RSS)/(1<<20), float64(after.RSS)/(1<<20)))
			if m1.HeapInuse > 0 {
				res.figure("Go heap in use per socket", (m1.HeapInuse-m0.HeapInuse)/float64(open)/1024, "KB", "", nil, "")
				res.figure("goroutine stacks per socket", (m1.StackInuse-m0.StackInuse)/float64(open)/1024, "KB", "", nil, "")
				res.figure("goroutines per socket", (m1.Goroutines-m0.Goroutines)/float64(open), "", "", nil, "")
			}
			cpu := idle.Server.CPUPercent
			res.figure("server idle CPU", cpu, "% of a core", "<= 2", atMost(cpu, 2), "heartbeat ping every 30 s per socket")
		}
		res.Picture = Picture{Phase: "connect", Hists: []string{"connect"}, Rate: []string{"connected", "pongs"}}
		r.noteLimits(idle, r.cores())
		return nil
	},
}

var chatScenario = &Scenario{
	Name:   "chat",
	Title:  "1:1 chat, persist-before-ack",
	Target: "10,000 msgs/s over 10,000 sockets; ack p99 <= 10 ms, delivery p99 <= 10 ms, p99.9 <= 25 ms; knee where p99 passes 50 ms",
	Run: func(ctx context.Context, r *Run) error {
		n := r.size(10000, 10, r.Opts.Sockets) &^ 1
		rate := r.rate(10000, 20)
		r.Result.Params["sockets"], r.Result.Params["rate"] = n, rate
		f, err := r.pairedFleet(ctx, n)
		if err != nil {
			return err
		}
		defer f.Stop()
		// Drains wait (bounded) for every ack, so that a backlog of one
		// phase does not spill into the next.
		if _, err := f.Do(ctx, Command{Op: OpChat, Phase: "warmup", Rate: rate, DurationMS: ms(r.duration(5*time.Second, 500*time.Millisecond)), DrainMS: 30000}); err != nil {
			return err
		}
		d := r.duration(30*time.Second, time.Second)
		wait := r.profile(ctx, d-2*time.Second)
		st, err := f.Do(ctx, Command{Op: OpChat, Phase: "steady", Rate: rate, DurationMS: ms(d), DrainMS: 60000})
		wait()
		if err != nil {
			return err
		}
		res := r.Result
		ack, del := st.Latency["ack"], st.Latency["delivery"]
		// Throughput over the whole phase, drain included: the drain ends
		// half a second after the last ack, so a backlog counts.
		got := float64(st.Counters["acked"]) / st.Seconds
		res.figure("messages acked per second (sustained)", got, "msgs/s", fmt.Sprintf("%.0f", rate), atLeast(got, 0.95*rate), fmt.Sprintf("%d sockets; %d acked in %.1f s", st.Open(), st.Counters["acked"], st.Seconds))
		res.figure("ack p99", ack.P99, "ms", "<= 10", atMost(ack.P99, 10), fmt.Sprintf("p50 %.2f, p99.9 %.1f, max %.0f", ack.P50, ack.P999, ack.Max))
		res.figure("delivery p99", del.P99, "ms", "<= 10", atMost(del.P99, 10), fmt.Sprintf("p50 %.2f, max %.0f", del.P50, del.Max))
		res.figure("delivery p99.9", del.P999, "ms", "<= 25", atMost(del.P999, 25), "")
		if st.Server != nil {
			res.figure("server CPU per message", st.Server.CPUPerMessageUS, "µs", "", nil, fmt.Sprintf("%.0f%% of a core", st.Server.CPUPercent))
			res.figure("server CPU per delivery", st.Server.CPUPerDeliverUS, "µs", "", nil, "1 delivery per message (1:1)")
		}
		res.figure("generator send lag p99", st.Latency["lag"].P99, "ms", "", nil, "how late sends left against the schedule")
		r.noteLimits(st, r.cores())
		res.Picture = Picture{Phase: "steady", Hists: []string{"ack", "delivery"}, Rate: []string{"acked", "delivered"}}
		if r.Opts.Ramp || !r.Opts.Quick {
			return r.ramp(ctx, f)
		}
		return nil
	},
}

// ramp raises the chat rate step by step until the p99 of ack or delivery
// passes 50 ms (the knee) or the server stops keeping up.
func (r *Run) ramp(ctx context.Context, f *Fleet) error {
	steps := []float64{2000, 4000, 6000, 8000, 10000, 12000, 14000, 17000, 20000, 24000, 28000}
	if r.Opts.Quick {
		steps = []float64{10, 20, 40}
	}
	stepFor := r.duration(8*time.Second, time.Second)
	if r.Opts.Duration > 0 {
		stepFor = 8 * time.Second
	}
	var last float64
	for _, rate := range steps {
		ph, err := f.Do(ctx, Command{Op: OpChat, Phase: fmt.Sprintf("ramp-%d", int(rate)), Rate: rate, DurationMS: ms(stepFor), DrainMS: 30000})
		if err != nil {
			return err
		}
		p99 := max(ph.Latency["ack"].P99, ph.Latency["delivery"].P99)
		got := float64(ph.Counters["acked"]) / ph.Seconds
		r.Result.figure(fmt.Sprintf("ramp %6.0f msgs/s: worst p99", rate), p99, "ms", "", nil,
			fmt.Sprintf("acked %.0f/s, ack p99 %.1f, delivery p99 %.1f, server %.0f%%", got, ph.Latency["ack"].P99, ph.Latency["delivery"].P99, cpuOf(ph)))
		if p99 > 50 || got < 0.9*rate {
			r.Result.figure("knee (p99 passes 50 ms or throughput falls behind)", rate, "msgs/s", "", nil, fmt.Sprintf("last rate below: %.0f msgs/s", last))
			return nil
		}
		last = rate
	}
	r.Result.figure("knee not reached up to", last, "msgs/s", "", nil, "")
	return nil
}

func cpuOf(ph *Phase) float64 {
	if ph.Server == nil {
		return 0
	}
	return ph.Server.CPUPercent
}

var fanoutScenario = &Scenario{
	Name:   "fanout",
	Title:  "group fan-out: groups of 256",
	Target: "about 100,000 deliveries/s; post-to-last-recipient p99 <= 20 ms",
	Run: func(ctx context.Context, r *Run) error {
		size := r.size(256, 4, 0)
		groups := r.size(39, 2, r.Opts.Sockets/size)
		n := size * groups
		deliveries := r.rate(100000, 30)
		rate := deliveries / float64(size-1)
		r.Result.Params["group_size"], r.Result.Params["groups"], r.Result.Params["sockets"] = size, groups, n
		r.Result.Params["messages_per_second"], r.Result.Params["deliveries_per_second"] = rate, deliveries
		us, err := r.users(ctx, "u", n)
		if err != nil {
			return err
		}
		gids := make([]string, groups)
		err = parallel(ctx, 0, groups, 4, func(ctx context.Context, g int) error {
			id, err := r.Acc.Group(ctx, r.api, fmt.Sprintf("g%d:%d", size, g), us[g*size:(g+1)*size])
			gids[g] = id
			return err
		})
		if err != nil {
			return err
		}
		if err := r.Acc.Save(); err != nil {
			return err
		}
		socks := make([]SockSpec, n)
		for i, u := range us {
			socks[i] = SockSpec{Token: u.Token, User: u.ID, Convs: []string{gids[i/size]}}
		}
		f, _, err := r.connectFleet(ctx, socks)
		if err != nil {
			return err
		}
		defer f.Stop()
		if _, err := f.Do(ctx, Command{Op: OpChat, Phase: "warmup", Rate: rate, DurationMS: ms(r.duration(5*time.Second, 500*time.Millisecond)), DrainMS: 30000}); err != nil {
			return err
		}
		d := r.duration(30*time.Second, time.Second)
		wait := r.profile(ctx, d-2*time.Second)
		st, err := f.Do(ctx, Command{Op: OpChat, Phase: "steady", Rate: rate, DurationMS: ms(d), DrainMS: 60000, TrackLast: true, Expect: size - 1})
		wait()
		if err != nil {
			return err
		}
		res := r.Result
		last, short := st.LastRecipient(size - 1)
		ls := last.Summarize()
		st.Hists["last"], st.Latency["last"] = last, ls
		got := float64(st.Counters["delivered"]) / st.Seconds
		res.figure("deliveries per second (sustained)", got, "/s", fmt.Sprintf("%.0f", deliveries), atLeast(got, 0.95*deliveries),
			fmt.Sprintf("%.0f msgs/s posted, %d recipients each", float64(st.Counters["acked"])/d.Seconds(), size-1))
		res.figure("post-to-last-recipient p99", ls.P99, "ms", "<= 20", atMost(ls.P99, 20), fmt.Sprintf("p50 %.1f, p99.9 %.1f, max %.0f", ls.P50, ls.P999, ls.Max))
		res.figure("delivery p99 (each recipient)", st.Latency["delivery"].P99, "ms", "", nil, fmt.Sprintf("p50 %.1f", st.Latency["delivery"].P50))
		res.figure("ack p99", st.Latency["ack"].P99, "ms", "", nil, "")
		res.figure("messages that missed recipients", float64(short), "msgs", "0", atMost(float64(short), 0), "")
		if st.Server != nil {
			res.figure("server CPU per delivery", st.Server.CPUPerDeliverUS, "µs", "", nil, fmt.Sprintf("%.0f%% of a core", st.Server.CPUPercent))
			res.figure("server CPU per message posted", st.Server.CPUPerMessageUS, "µs", "", nil, "")
		}
		res.figure("generator send lag p99", st.Latency["lag"].P99, "ms", "", nil, "")
		r.noteLimits(st, r.cores())
		res.Picture = defaultPicture("fanout")
		return nil
	},
}

var stormScenario = &Scenario{
	Name:   "storm",
	Title:  "reconnect storm: every socket dropped, back with 0-1 s jitter, synced",
	Target: "all reconnected and synced within 3 s",
	Run: func(ctx context.Context, r *Run) error {
		n := r.size(10000, 10, r.Opts.Sockets) &^ 1
		r.Result.Params["sockets"] = n
		f, err := r.pairedFleet(ctx, n)
		if err != nil {
			return err
		}
		defer f.Stop()
		if _, err := f.Do(ctx, Command{Op: OpChat, Phase: "traffic", Rate: r.rate(2000, 10), DurationMS: ms(r.duration(5*time.Second, 500*time.Millisecond)), DrainMS: 30000}); err != nil {
			return err
		}
		// Each device then knows its conversations up to two messages
		// before the end: the sync after the storm brings those.
		if _, err := f.Do(ctx, Command{Op: OpLearn, Phase: "cursors", Count: 2, Concurrent: 50}); err != nil {
			return err
		}
		at := time.Now().Add(2 * time.Second)
		jitter := time.Second
		wait := r.profile(ctx, 10*time.Second)
		st, err := f.Do(ctx, Command{Op: OpStorm, Phase: "storm", At: at.UnixNano(), JitterMS: ms(jitter), TimeoutMS: ms(90 * time.Second)})
		wait()
		if err != nil {
			return err
		}
		// Right after the storm: is the store's single writer still busy
		// with what the disconnects queued (each closed socket records its
		// device's last_seen in its own transaction)?
		after, err := f.Do(ctx, Command{Op: OpChat, Phase: "after", Rate: r.rate(1000, 10), DurationMS: ms(r.duration(3*time.Second, 500*time.Millisecond)), DrainMS: 30000})
		if err != nil {
			return err
		}
		res := r.Result
		res.figure("ack p99 of messages sent right after the storm", after.Latency["ack"].P99, "ms", "", nil, fmt.Sprintf("p50 %.1f ms, %.0f msgs/s", after.Latency["ack"].P50, r.rate(1000, 10)))
		storm := st.Latency["storm"]
		synced := st.Counters["synced"]
		res.figure("sockets reconnected and synced", float64(synced), "sockets", fmt.Sprintf("%d", n), atLeast(float64(synced), float64(n)), "")
		res.figure("time until all synced (drop to last sync_complete)", storm.Max/1000, "s", "<= 3", atMost(storm.Max/1000, 3), fmt.Sprintf("p50 %.2f s, p99 %.2f s", storm.P50/1000, storm.P99/1000))
		res.figure("reconnect p99 (dial to ready)", st.Latency["reconnect"].P99, "ms", "", nil, fmt.Sprintf("p50 %.0f ms", st.Latency["reconnect"].P50))
		res.figure("SYNs dropped: listen queue full", st.ListenDrops, "", "", nil, "kernel ListenDrops; a dropped SYN is retried after 1 s, then 3 s")
		res.figure("sync p99 after reconnect", st.Latency["sync"].P99, "ms", "", nil, "")
		res.figure("reconnect + sync p99", st.Latency["resync"].P99, "ms", "", nil, "")
		if st.Server != nil {
			res.figure("server CPU per reconnect+sync", st.Server.CPUSeconds*1e6/float64(max(synced, 1)), "µs", "", nil, "")
		}
		r.noteLimits(st, r.cores())
		res.Picture = Picture{Phase: "storm", Hists: []string{"storm", "resync", "reconnect"}, Rate: []string{"connected", "synced"}}
		return nil
	},
}

var syncScenario = &Scenario{
	Name:   "sync",
	Title:  "offline sync: a device that missed 1,000 messages across 20 conversations",
	Target: "complete sync p99 <= 25 ms at 200 syncs/s",
	Run: func(ctx context.Context, r *Run) error {
		peers, syncers, per := r.size(20, 2, 0), r.size(50, 3, 0), r.size(50, 5, 0)
		r.Result.Params["conversations_per_device"], r.Result.Params["missed_per_conversation"], r.Result.Params["devices"] = peers, per, syncers
		us, err := r.users(ctx, "s", peers+syncers)
		if err != nil {
			return err
		}
		convs := make([][]string, peers) // by peer
		for p := range convs {
			convs[p] = make([]string, syncers)
		}
		err = parallel(ctx, 0, peers*syncers, 32, func(ctx context.Context, k int) error {
			p, s := k/syncers, k%syncers
			id, err := r.Acc.Direct(ctx, r.api, fmt.Sprintf("d:s:%d:%d", p, peers+s), us[p], us[peers+s])
			convs[p][s] = id
			return err
		})
		if err != nil {
			return err
		}
		seedKey := fmt.Sprintf("seed:s:%d:%d:%d", peers, syncers, per)
		if !r.Acc.Marked(seedKey) {
			socks := make([]SockSpec, peers)
			for p := range socks {
				socks[p] = SockSpec{Token: us[p].Token, User: us[p].ID, Convs: convs[p]}
			}
			pf, _, err := r.connectFleet(ctx, socks)
			if err != nil {
				return err
			}
			ph, err := pf.Do(ctx, Command{Op: OpBurst, Phase: "seed", Count: per, Window: 32, TimeoutMS: ms(5 * time.Minute)})
			pf.Stop()
			if err != nil {
				return err
			}
			if ph.Counters["acked"] < uint64(peers*syncers*per) {
				return fmt.Errorf("seeding: %d of %d messages acked", ph.Counters["acked"], peers*syncers*per)
			}
			if err := r.Acc.Mark(seedKey); err != nil {
				return err
			}
		}
		socks := make([]SockSpec, syncers)
		for s := range socks {
			u := us[peers+s]
			socks[s] = SockSpec{Token: u.Token, User: u.ID}
		}
		f, _, err := r.connectFleet(ctx, socks)
		if err != nil {
			return err
		}
		defer f.Stop()
		if _, err := f.Do(ctx, Command{Op: OpLearn, Phase: "cursors", Count: per, Concurrent: 20}); err != nil {
			return err
		}
		rate := r.rate(200, 5)
		if _, err := f.Do(ctx, Command{Op: OpSync, Phase: "warmup", Rate: rate, DurationMS: ms(r.duration(3*time.Second, 500*time.Millisecond))}); err != nil {
			return err
		}
		d := r.duration(20*time.Second, time.Second)
		wait := r.profile(ctx, d-2*time.Second)
		st, err := f.Do(ctx, Command{Op: OpSync, Phase: "steady", Rate: rate, DurationMS: ms(d)})
		wait()
		if err != nil {
			return err
		}
		res := r.Result
		sy := st.Latency["sync"]
		got := float64(st.Counters["synced"]) / d.Seconds()
		perSync := float64(st.Counters["sync_msgs"]) / float64(max(st.Counters["synced"], 1))
		res.figure("complete sync p99", sy.P99, "ms", "<= 25", atMost(sy.P99, 25), fmt.Sprintf("p50 %.1f, p99.9 %.1f, max %.0f", sy.P50, sy.P999, sy.Max))
		res.figure("syncs per second", got, "/s", fmt.Sprintf("%.0f", rate), atLeast(got, 0.95*rate), "")
		res.figure("messages per sync", perSync, "msgs", fmt.Sprintf("%d", peers*per), atLeast(perSync, float64(peers*per)), fmt.Sprintf("across %d conversations", peers))
		res.figure("messages synced per second", float64(st.Counters["sync_msgs"])/d.Seconds(), "msgs/s", "", nil, "")
		if st.Server != nil {
			res.figure("server CPU per sync", st.Server.CPUPerOpUS, "µs", "", nil, fmt.Sprintf("%.0f%% of a core", st.Server.CPUPercent))
		}
		r.noteLimits(st, r.cores())
		res.Picture = Picture{Phase: "steady", Hists: []string{"sync"}, Rate: []string{"synced"}}
		return nil
	},
}

// historySeed sizes the history scenario.
func historySeed(o *Options) HistorySeed {
	if o.Quick {
		return HistorySeed{Total: 3000, Conv: 2000, Convs: 1}
	}
	return HistorySeed{Total: 1000000, Conv: 100000, Convs: 9}
}

var historyScenario = &Scenario{
	Name:   "history",
	Title:  "history: pages of 50 before a random cursor, 100,000-message conversation, 1,000,000 stored",
	Target: "p99 <= 2 ms at 5,000 pages/s",
	Prepare: func(ctx context.Context, o *Options, dataDir string) error {
		return SeedHistory(ctx, dataDir, historySeed(o), o.Log)
	},
	Run: func(ctx context.Context, r *Run) error {
		seed := historySeed(r.Opts)
		r.Result.Params["stored_messages"], r.Result.Params["conversation_messages"] = seed.Total, seed.Conv
		acc, err := r.api.login(ctx, historyUser(0))
		if err != nil {
			return fmt.Errorf("no seeded history account (run `parley-bench seed-history --data-dir DIR` before starting the server, or use --start-server): %w", err)
		}
		var list struct {
			Conversations []convResp `json:"conversations"`
		}
		if err := r.api.do(ctx, "GET", "/api/v1/conversations", acc.Token, nil, &list); err != nil {
			return err
		}
		var conv convResp
		for _, c := range list.Conversations {
			if c.LastSeq > conv.LastSeq {
				conv = c
			}
		}
		if conv.LastSeq < int64(seed.Conv) {
			return fmt.Errorf("the history conversation holds %d messages, not %d: seed it first", conv.LastSeq, seed.Conv)
		}
		f, err := r.StartFleet(ctx, []SockSpec{{Token: acc.Token, User: acc.ID}})
		if err != nil {
			return err
		}
		defer f.Stop()
		rate := r.rate(5000, 50)
		cmd := Command{Op: OpHistory, Rate: rate, Conv: conv.ID, MaxSeq: conv.LastSeq, PageSize: 50, Concurrent: 64}
		warm := cmd
		warm.Phase, warm.DurationMS = "warmup", ms(r.duration(3*time.Second, 500*time.Millisecond))
		if _, err := f.Do(ctx, warm); err != nil {
			return err
		}
		d := r.duration(20*time.Second, time.Second)
		wait := r.profile(ctx, d-2*time.Second)
		cmd.Phase, cmd.DurationMS = "steady", ms(d)
		st, err := f.Do(ctx, cmd)
		wait()
		if err != nil {
			return err
		}
		res := r.Result
		pg := st.Latency["page"]
		got := float64(st.Counters["pages"]) / d.Seconds()
		res.figure("page p99", pg.P99, "ms", "<= 2", atMost(pg.P99, 2), fmt.Sprintf("p50 %.2f, p99.9 %.1f, max %.0f", pg.P50, pg.P999, pg.Max))
		res.figure("pages per second", got, "/s", fmt.Sprintf("%.0f", rate), atLeast(got, 0.95*rate), fmt.Sprintf("%d skipped: all %d connections busy", st.Counters["late"], cmd.Concurrent))
		if st.Server != nil {
			res.figure("server CPU per page", st.Server.CPUPerOpUS, "µs", "", nil, fmt.Sprintf("%.0f%% of a core", st.Server.CPUPercent))
		}
		r.noteLimits(st, r.cores())
		res.Picture = Picture{Phase: "steady", Hists: []string{"page"}, Rate: []string{"pages"}}
		return nil
	},
}
