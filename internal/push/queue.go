package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Queue is a durable work queue shared by every node: with --nats, a
// JetStream work-queue stream (package pushjs adapts natsbus.Queue). With
// one, the dispatcher hands the jobs it claims from the store's outbox over
// to the queue instead of sending them, and every node's consumer sends what
// the queue gives it. The collapsing and the window stay in the store, which
// all nodes share.
type Queue interface {
	// Enqueue stores jobs durably and returns one error per job: nil once
	// the queue holds the job, or recently held one with the same ID (the
	// duplicate is dropped). A job replaces the one with the same Key
	// still waiting in the queue.
	Enqueue(ctx context.Context, jobs []QueueJob) []error
	// Consume calls handle for queued jobs, several at once, each job on
	// one node at a time, until ctx ends; it returns after the running
	// calls. A job is removed once handle settles it as done, and offered
	// again after its delay otherwise. A job whose handler does not return
	// (the node died) is offered again after a while.
	Consume(ctx context.Context, handle func(QueueDelivery) Settle) error
}

// QueueJob is one job for Queue.Enqueue.
type QueueJob struct {
	Key  string // the collapse key: at most one waiting job per key; a token of [A-Za-z0-9_-]
	ID   string // the deduplication id
	Data []byte
}

// QueueDelivery is one attempt at a queued job.
type QueueDelivery struct {
	Data    []byte
	Attempt int // 1 on the first delivery
}

// Settle is what becomes of a delivered job: done (removed from the
// queue), or retried after a delay.
type Settle struct {
	Retry bool
	After time.Duration
}

// queuedJob is a job as the queue carries it. The subscription is named,
// not copied: it is read again when the job is sent, so a subscription
// deleted meanwhile (unsubscribed, moved to another user) gets nothing,
// and one subscribed again with new keys gets a payload it can decrypt.
type queuedJob struct {
	Sub      string `json:"sub"`
	User     string `json:"user"`
	Conv     string `json:"conv"`
	Kind     string `json:"kind"`
	Sender   string `json:"sender,omitempty"`
	Count    int64  `json:"count,omitempty"`
	Badge    int64  `json:"badge"`
	Seq      int64  `json:"seq"`
	Attempts int    `json:"attempts,omitempty"` // failed attempts before the hand-over
	Gen      int64  `json:"gen"`
}

// queueJobFor encodes a claimed job for the queue. Its key is the
// (subscription, conversation) pair, as in the outbox, so a newer
// notification replaces a waiting one. Its ID names the notification: the
// pair, the kind, the seq and count it covers, and the outbox generation. A
// job claimed again after a lost hand-over (enqueued, not yet finished in
// the store) gets the same ID, and the queue drops the repeat. The
// generation alone would not do: it starts at 1 again once a row is
// finished, so the next notification for the pair would look like the last.
func queueJobFor(j *chat.PushJob) (QueueJob, error) {
	data, err := json.Marshal(queuedJob{Sub: j.Sub.ID, User: j.Sub.UserID, Conv: j.ConversationID, Kind: j.Kind,
		Sender: j.SenderName, Count: j.Count, Badge: j.Badge, Seq: j.Seq, Attempts: j.Attempts, Gen: j.Gen})
	if err != nil {
		return QueueJob{}, err
	}
	key := CollapseKey(j.Sub.ID) + "." + CollapseKey(j.ConversationID)
	return QueueJob{Key: key, ID: fmt.Sprintf("%s.%s.%d.%d.%d", key, j.Kind, j.Seq, j.Count, j.Gen), Data: data}, nil
}

// maxHandOverLease bounds the lease of jobs claimed for the queue: it only
// has to cover the enqueue and the store's finish, and a job whose hand-over
// was lost comes back after it (and must come back within the queue's
// duplicate window, 2 minutes, to be recognised).
const maxHandOverLease = 30 * time.Second

// handOver claims due jobs and moves them to the queue: once the queue
// holds them they are finished (deleted) in the store. A job the queue
// refused, or whose finish failed, stays leased and is claimed and enqueued
// again after the lease; the queue drops the duplicates.
func (s *Service) handOver(ctx context.Context, now int64) {
	lease := min(s.cfg.Lease, maxHandOverLease)
	for range 16 { // at most 16 batches per pump; a longer backlog goes on at the next
		jobs, err := s.store.ClaimPushJobs(ctx, now, now+lease.Milliseconds(), claimBatch)
		if err != nil {
			s.log.Warn("claiming push jobs", "err", err)
			return
		}
		if len(jobs) == 0 {
			return
		}
		qjobs := make([]QueueJob, 0, len(jobs))
		handed := make([]chat.PushJobResult, 0, len(jobs))
		idx := make([]int, 0, len(jobs))
		for i := range jobs {
			qj, err := queueJobFor(&jobs[i])
			if err != nil {
				s.log.Warn("encoding a push job; dropped", "err", err)
				handed = append(handed, chat.PushJobResult{SubscriptionID: jobs[i].Sub.ID, ConversationID: jobs[i].ConversationID, Gen: jobs[i].Gen})
				continue
			}
			qjobs, idx = append(qjobs, qj), append(idx, i)
		}
		ectx, cancel := context.WithTimeout(s.halt, 30*time.Second)
		errs := s.queue.Enqueue(ectx, qjobs)
		cancel()
		var failed []error
		for k, err := range errs {
			if err != nil {
				failed = append(failed, err)
				continue
			}
			j := &jobs[idx[k]]
			handed = append(handed, chat.PushJobResult{SubscriptionID: j.Sub.ID, ConversationID: j.ConversationID, Gen: j.Gen})
		}
		if err := s.store.FinishPushJobs(ctx, handed); err != nil {
			s.log.Warn("recording push jobs handed to the queue; they are enqueued again after the lease", "jobs", len(handed), "err", err)
			return
		}
		if len(failed) > 0 {
			s.log.Warn("enqueueing push jobs; retried after the lease", "failed", len(failed), "of", len(qjobs), "err", errors.Join(failed...))
			return
		}
		if len(jobs) < claimBatch {
			return
		}
	}
}

// consumeLoop runs the queue's consumer until Close.
func (s *Service) consumeLoop(ctx context.Context) {
	defer s.workers.Done()
	for {
		err := s.queue.Consume(ctx, s.sendQueued)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("push queue consumer stopped; restarting", "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sendQueued sends one job the queue delivered, as a sender does for a
// claimed one: skipped if its user came back, sent, retried after the
// backoff or the service's Retry-After (the queue holds it meanwhile, and a
// newer notification replaces it), dropped, or its subscription deleted.
func (s *Service) sendQueued(d QueueDelivery) Settle {
	var q queuedJob
	if err := json.Unmarshal(d.Data, &q); err != nil || q.Sub == "" || q.User == "" {
		s.log.Warn("malformed push job in the queue; dropped", "err", err)
		return Settle{}
	}
	attempts := q.Attempts + max(d.Attempt, 1) - 1
	ctx, cancel := context.WithTimeout(s.sendCtx, 30*time.Second)
	defer cancel()
	subs, err := s.store.PushSubscriptions(ctx, q.User)
	if err != nil {
		if s.sendCtx.Err() != nil {
			return Settle{Retry: true} // closing: another node may have it now
		}
		s.log.Warn("reading a push job's subscription; retried", "err", err)
		return Settle{Retry: true, After: s.retryDelay(attempts, 0)}
	}
	j := chat.PushJob{ConversationID: q.Conv, Kind: q.Kind, SenderName: q.Sender, Count: q.Count, Badge: q.Badge, Seq: q.Seq, Attempts: attempts, Gen: q.Gen}
	found := false
	for _, sub := range subs {
		if sub.ID == q.Sub {
			j.Sub, found = sub, true
			break
		}
	}
	if !found {
		return Settle{} // deleted since: its jobs go with it, as in the outbox
	}
	o := s.deliver(&j)
	settle := Settle{}
	switch {
	case o.res.Gone:
		if err := s.store.DeletePushSubscription(ctx, q.User, q.Sub); err != nil && !errors.Is(err, chat.ErrNotFound) {
			s.log.Warn("deleting a gone push subscription; retried", "err", err)
			settle = Settle{Retry: true, After: s.retryDelay(attempts, 0)}
		}
	case o.res.RetryAt > 0:
		settle = Settle{Retry: true, After: o.retryIn}
	}
	if o.label != "" {
		s.metrics.Sent(o.platform, o.label, o.took)
	}
	return settle
}
