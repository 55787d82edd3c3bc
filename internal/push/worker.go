package push

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// claimBatch bounds the rows and jobs one store call handles.
const claimBatch = 256

// dispatchLoop polls the outbox: it turns due pending rows into jobs and
// claims jobs for the senders, as many as there is room for in flight. It
// runs on every poke (a new record, a finished batch) and every
// PollInterval.
func (s *Service) dispatchLoop() {
	defer s.loops.Done()
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		s.pump()
		select {
		case <-s.wake:
		case <-tick.C:
		case <-s.stop:
			return
		}
	}
}

func (s *Service) pump() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := s.now().UnixMilli()
	for range 16 { // at most 16 batches per pump; a longer backlog goes on at the next
		n, err := s.store.QueueDuePushes(ctx, now, s.cfg.Window.Milliseconds(), claimBatch)
		if err != nil {
			s.log.Warn("queueing due push notifications", "err", err)
			return
		}
		s.metrics.Queued(n)
		if n < claimBatch {
			break
		}
	}
	if s.queue != nil {
		s.handOver(ctx, now)
		return
	}
	room := int64(cap(s.jobs))
	for {
		free := room - s.inflight.Load()
		if free <= 0 {
			return
		}
		jobs, err := s.store.ClaimPushJobs(ctx, now, now+s.cfg.Lease.Milliseconds(), int(min(free, claimBatch)))
		if err != nil {
			s.log.Warn("claiming push jobs", "err", err)
			return
		}
		s.inflight.Add(int64(len(jobs)))
		for _, j := range jobs {
			s.jobs <- j // never blocks: at most cap(jobs) are in flight
		}
		if int64(len(jobs)) < min(free, claimBatch) {
			return
		}
	}
}

// sendLoop is one sender: it takes claimed jobs until the service stops.
func (s *Service) sendLoop() {
	defer s.workers.Done()
	for {
		select {
		case j := <-s.jobs:
			s.results <- s.deliver(&j)
		case <-s.stop:
			// Claimed jobs nobody took go back to the outbox, due now.
			for {
				select {
				case j := <-s.jobs:
					s.results <- outcome{res: chat.PushJobResult{SubscriptionID: j.Sub.ID, ConversationID: j.ConversationID, Gen: j.Gen, RetryAt: s.now().UnixMilli()}}
				default:
					return
				}
			}
		}
	}
}

// outcome is a finished send: what to store, and what to count once stored.
type outcome struct {
	res      chat.PushJobResult
	platform string
	label    string // "": nothing to count
	took     time.Duration
	retryIn  time.Duration // when res.RetryAt is set: the delay it stands for
}

// deliver sends one job, unless its user (for a clear: its device) has a
// socket now, and says what becomes of it.
func (s *Service) deliver(j *chat.PushJob) outcome {
	platform := j.Sub.Platform
	o := outcome{res: chat.PushJobResult{SubscriptionID: j.Sub.ID, ConversationID: j.ConversationID, Gen: j.Gen}, platform: platform}
	if (j.Kind == chat.PushAlert && s.presence.Online(j.Sub.UserID)) ||
		(j.Kind == chat.PushClear && s.presence.DeviceOnline(j.Sub.UserID, j.Sub.DeviceID)) {
		o.label = OutcomeSkipped
		return o
	}
	snd := s.senders[platform]
	if snd == nil {
		// The platform was configured when the device subscribed, and is
		// not any more.
		o.label = OutcomeFailed
		return o
	}
	n := notificationFor(j)
	start := time.Now()
	r := snd.send(s.sendCtx, &j.Sub, &n)
	o.took = time.Since(start)
	if s.sendCtx.Err() != nil && r.verdict == vRetry {
		// Abandoned by Close: due again at the next start.
		o.res.RetryAt = s.now().UnixMilli()
		return o
	}
	if r.verdict == vRetry && j.Attempts+1 >= s.cfg.MaxAttempts {
		r.verdict = vFailed
	}
	o.label = r.label()
	switch r.verdict {
	case vGone:
		o.res.Gone = true
		s.log.Info("push subscription gone; deleted", "platform", platform, "user", j.Sub.UserID, "device", j.Sub.DeviceID, "status", r.status, "reason", r.reason)
	case vRetry:
		o.retryIn = s.retryDelay(j.Attempts, r.retryAfter)
		o.res.RetryAt = s.now().Add(o.retryIn).UnixMilli()
		s.log.Debug("push retry", "platform", platform, "status", r.status, "reason", r.reason, "attempt", j.Attempts+1)
	case vFailed:
		s.log.Warn("push notification dropped", "platform", platform, "status", r.status, "reason", r.reason, "attempts", j.Attempts+1)
	}
	return o
}

// retryDelay is exponential backoff with jitter, RetryBase·2^attempts
// capped at RetryMax, and never sooner than the service's Retry-After
// (itself capped at the notification's TTL).
func (s *Service) retryDelay(attempts int, retryAfter time.Duration) time.Duration {
	d := s.cfg.RetryBase << min(attempts, 30)
	if d <= 0 || d > s.cfg.RetryMax {
		d = s.cfg.RetryMax
	}
	d = d/2 + rand.N(d/2+1) // "equal jitter": spreads retries, keeps half the delay
	return max(d, min(retryAfter, s.cfg.TTL))
}

// finishLoop stores the senders' outcomes, batching what is waiting into
// one transaction, counts them, and makes room for more claims.
func (s *Service) finishLoop() {
	defer s.finisher.Done()
	batch := make([]outcome, 0, claimBatch)
	results := make([]chat.PushJobResult, 0, claimBatch)
	for o := range s.results {
		batch = append(batch[:0], o)
	fill:
		for len(batch) < claimBatch {
			select {
			case o, ok := <-s.results:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		results = results[:0]
		for _, o := range batch {
			results = append(results, o.res)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.store.FinishPushJobs(ctx, results); err != nil {
			// The jobs stay leased and are sent again after the lease.
			s.log.Warn("storing push outcomes", "jobs", len(batch), "err", err)
		}
		cancel()
		for _, o := range batch {
			if o.label != "" {
				s.metrics.Sent(o.platform, o.label, o.took)
			}
		}
		s.inflight.Add(-int64(len(batch)))
		s.poke()
	}
}
