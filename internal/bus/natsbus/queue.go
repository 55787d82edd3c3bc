package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/internal/chat"
)

// Defaults of QueueOptions.
const (
	DefaultQueueStream     = "PARLEY_JOBS"
	DefaultQueueSubject    = "jobs"
	DefaultQueueDurable    = "parley-jobs"
	DefaultQueueMaxDeliver = 5
	DefaultQueueAckWait    = 30 * time.Second
)

// DefaultQueueBackoff is the default delay before a failed job's next
// attempt; past its end the last delay repeats.
var DefaultQueueBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// QueueOptions configures a Queue. Zero fields take their defaults.
type QueueOptions struct {
	// Stream is the JetStream stream's name. Default "PARLEY_JOBS".
	Stream string
	// Subject is the queue's subject root under the bus prefix: jobs are
	// published to <prefix><Subject>.<subject>. Default "jobs".
	Subject string
	// Durable is the name of the pull consumer shared by every worker.
	// Default "parley-jobs".
	Durable string
	// MaxDeliver is how many times a job is attempted before it is dropped
	// (logged and terminated). Default 5; -1 retries forever.
	MaxDeliver int
	// Backoff is the delay before the next attempt after the n-th failure
	// (Backoff[n-1], the last one repeating). Default DefaultQueueBackoff.
	Backoff []time.Duration
	// AckWait is how long a job may run before the server hands it to
	// another worker; the handler's context ends then. Default 30 s.
	AckWait time.Duration
	// Concurrency is how many jobs one Consume runs at once. Default 1.
	Concurrency int
	// MaxAge drops jobs older than it, done or not. Default 0: kept until done.
	MaxAge time.Duration
	// Storage is the stream's storage. Default file storage.
	Storage jetstream.StorageType
	// Replicas is the stream's replica count in a cluster. Default 1.
	Replicas int
}

// Queue is a durable job queue: a work-queue stream (a job is removed once
// acknowledged) with one durable pull consumer shared by the Consume calls
// of every node, so each job goes to one worker at a time. Delivery is at
// least once: a handler must tolerate a job it has already done.
type Queue struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	opts    QueueOptions
	root    string // <prefix><Subject>.
	log     *slog.Logger
	dropped atomic.Uint64
}

// NewQueue creates or updates the stream and its consumer. Every node may
// call it with the same options.
func NewQueue(ctx context.Context, b *Bus, opts QueueOptions) (*Queue, error) {
	if opts.Stream == "" {
		opts.Stream = DefaultQueueStream
	}
	if opts.Subject == "" {
		opts.Subject = DefaultQueueSubject
	}
	if opts.Durable == "" {
		opts.Durable = DefaultQueueDurable
	}
	if opts.MaxDeliver == 0 {
		opts.MaxDeliver = DefaultQueueMaxDeliver
	}
	if opts.MaxDeliver < -1 {
		opts.MaxDeliver = -1
	}
	if len(opts.Backoff) == 0 {
		opts.Backoff = DefaultQueueBackoff
	}
	if opts.AckWait <= 0 {
		opts.AckWait = DefaultQueueAckWait
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if err := validSubject(opts.Subject); err != nil {
		return nil, fmt.Errorf("natsbus: queue subject %q: %w", opts.Subject, err)
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, fmt.Errorf("natsbus: queue: %w", err)
	}
	q := &Queue{nc: b.nc, js: js, opts: opts, root: b.opts.Prefix + opts.Subject + ".", log: b.log}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        opts.Stream,
		Description: "Parley durable jobs",
		Subjects:    []string{q.root + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      opts.MaxAge,
		Storage:     opts.Storage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: queue stream %s: %w", opts.Stream, jsError(err))
	}
	if _, err := q.consumer(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Queue) consumer(ctx context.Context) (jetstream.Consumer, error) {
	c, err := q.js.CreateOrUpdateConsumer(ctx, q.opts.Stream, jetstream.ConsumerConfig{
		Durable:       q.opts.Durable,
		Description:   "Parley job workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.opts.AckWait,
		MaxDeliver:    q.opts.MaxDeliver,
		MaxAckPending: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: queue consumer %s: %w", q.opts.Durable, jsError(err))
	}
	return c, nil
}

// Enqueue stores a job under <prefix><Subject>.<subject> and returns once
// the server has persisted it. subject is a dot-separated name like "push".
func (q *Queue) Enqueue(ctx context.Context, subject string, data []byte) error {
	if err := validTopic(subject); err != nil {
		return err
	}
	if _, err := q.js.Publish(ctx, q.root+subject, data); err != nil {
		return fmt.Errorf("natsbus: enqueue %s: %w", subject, jsError(err))
	}
	return nil
}

// Dropped returns how many jobs this queue's Consume calls gave up on after
// MaxDeliver attempts.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Consume runs handler for jobs, up to Concurrency at once, until ctx is
// done; it returns nil then, after the running handlers return, or an error
// wrapping chat.ErrUnavailable once the bus is closed. A job whose
// handler returns nil is acknowledged (and leaves the stream); one whose
// handler fails is retried after the backoff delay, and dropped after
// MaxDeliver attempts. The handler's context ends after AckWait. If the
// consumer stops (deleted, server lost its state), Consume recreates it.
func (q *Queue) Consume(ctx context.Context, handler func(ctx context.Context, data []byte) error) error {
	sem := make(chan struct{}, q.opts.Concurrency)
	var running sync.WaitGroup
	defer running.Wait()
	cb := func(m jetstream.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			_ = m.Nak() // let another worker have it now
			return
		}
		running.Add(1)
		go func() {
			defer func() { <-sem; running.Done() }()
			q.handle(ctx, m, handler)
		}()
	}
	for {
		c, err := q.consumer(ctx)
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = c.Consume(cb,
				jetstream.PullMaxMessages(q.opts.Concurrency),
				jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
					q.log.Warn("queue consume", "stream", q.opts.Stream, "err", err)
				}))
			if err == nil {
				select {
				case <-ctx.Done():
					cc.Stop()
					<-cc.Closed()
					return nil
				case <-cc.Closed():
					err = errors.New("consumer stopped")
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if q.nc.IsClosed() || q.nc.IsDraining() {
			return fmt.Errorf("natsbus: consume: %w: bus closed", chat.ErrUnavailable)
		}
		q.log.Warn("queue consumer down, retrying", "stream", q.opts.Stream, "err", err)
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// handle runs one job and settles it with the server.
func (q *Queue) handle(ctx context.Context, m jetstream.Msg, handler func(context.Context, []byte) error) {
	attempt := uint64(1)
	if md, err := m.Metadata(); err == nil {
		attempt = md.NumDelivered
	}
	hctx, cancel := context.WithTimeout(ctx, q.opts.AckWait)
	err := handler(hctx, m.Data())
	cancel()
	var aerr error
	switch {
	case err == nil:
		aerr = m.Ack()
	case ctx.Err() != nil:
		aerr = m.Nak() // shutting down: let another worker have it now
	case q.opts.MaxDeliver > 0 && attempt >= uint64(q.opts.MaxDeliver):
		q.dropped.Add(1)
		q.log.Error("job dropped", "subject", m.Subject(), "attempts", attempt, "err", err)
		aerr = m.TermWithReason(fmt.Sprintf("failed %d times: %v", attempt, err))
	default:
		delay := q.opts.Backoff[min(int(attempt), len(q.opts.Backoff))-1]
		q.log.Warn("job failed, retrying", "subject", m.Subject(), "attempt", attempt, "in", delay, "err", err)
		aerr = m.NakWithDelay(delay)
	}
	if aerr != nil {
		q.log.Warn("job ack", "subject", m.Subject(), "err", aerr)
	}
}
