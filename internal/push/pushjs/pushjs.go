// Package pushjs carries push jobs through JetStream: it adapts a
// natsbus.Queue to push.Queue.
//
// The jobs live in their own work-queue stream, PARLEY_PUSH, on the subjects
// <prefix>push.<subscription>.<conversation>, with one shared durable pull
// consumer (parley-push), so each job goes to one node's sender at a time:
//
//   - at most one job waits per subject (MaxMsgsPerSubject 1, DiscardOld):
//     a newer notification for a (subscription, conversation) replaces the
//     one still queued, even one waiting for a retry, as in the outbox;
//   - each job is published with a Nats-Msg-Id naming the notification,
//     so one enqueued again after a lost hand-over is dropped by the
//     server (duplicate window: 2 minutes);
//   - a retry is a NAK with the delay the sender chose (backoff, never
//     sooner than Retry-After); the handler gives up after
//     push.Config.MaxAttempts, so the consumer itself never does
//     (MaxDeliver -1);
//   - a job not acknowledged within AckWait (the node died mid-send) is
//     delivered again, to any node; jobs older than the notifications' TTL
//     are discarded (MaxAge).
package pushjs

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/push"
)

// Stream, subject root and consumer of the push queue.
const (
	Stream  = "PARLEY_PUSH"
	Subject = "push"
	Durable = "parley-push"
)

// Options tunes the queue. Zero fields take push.DefaultConfig's values.
type Options struct {
	Concurrency int           // jobs one node sends at once (push.Config.Workers)
	AckWait     time.Duration // a job unsettled after this goes to another node (push.Config.Lease)
	MaxAge      time.Duration // jobs older than this are discarded (push.Config.TTL)
	Replicas    int           // the stream's replicas in a JetStream cluster (1)
	Storage     jetstream.StorageType
}

// Queue is a push.Queue on JetStream.
type Queue struct {
	q *natsbus.Queue
}

var _ push.Queue = (*Queue)(nil)

// Open creates or updates the stream and its consumer; every node calls it
// with the same options.
func Open(ctx context.Context, b *natsbus.Bus, o Options) (*Queue, error) {
	d := push.DefaultConfig()
	if o.Concurrency <= 0 {
		o.Concurrency = d.Workers
	}
	if o.AckWait <= 0 {
		o.AckWait = d.Lease
	}
	if o.MaxAge <= 0 {
		o.MaxAge = d.TTL
	}
	q, err := natsbus.NewQueue(ctx, b, natsbus.QueueOptions{
		Stream:        Stream,
		Subject:       Subject,
		Durable:       Durable,
		MaxDeliver:    -1,
		AckWait:       o.AckWait,
		Concurrency:   o.Concurrency,
		MaxAge:        o.MaxAge,
		Storage:       o.Storage,
		Replicas:      o.Replicas,
		MaxPerSubject: 1,
		Duplicates:    2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	return &Queue{q: q}, nil
}

// Enqueue implements push.Queue.
func (q *Queue) Enqueue(ctx context.Context, jobs []push.QueueJob) []error {
	nj := make([]natsbus.Job, len(jobs))
	for i, j := range jobs {
		nj[i] = natsbus.Job{Subject: j.Key, ID: j.ID, Data: j.Data}
	}
	return q.q.EnqueueJobs(ctx, nj)
}

var errRetry = errors.New("push: retry")

// Consume implements push.Queue.
func (q *Queue) Consume(ctx context.Context, handle func(push.QueueDelivery) push.Settle) error {
	return q.q.ConsumeJobs(ctx, func(_ context.Context, d natsbus.Delivery) error {
		s := handle(push.QueueDelivery{Data: d.Data, Attempt: d.Attempt})
		if s.Retry {
			return natsbus.RetryIn(s.After, errRetry)
		}
		return nil
	})
}

// Duplicates returns how many jobs this node enqueued again that the
// server recognised by their id (and dropped).
func (q *Queue) Duplicates() uint64 { return q.q.Duplicates() }
