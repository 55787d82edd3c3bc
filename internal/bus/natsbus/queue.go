package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	// MaxPerSubject keeps at most this many jobs waiting per subject: a
	// newer job discards the oldest of its subject, even one waiting for a
	// retry. 1 makes a subject a collapse key (the newest job replaces the
	// queued one). Default 0: no limit.
	MaxPerSubject int64
	// Duplicates is the window within which a job enqueued again with the
	// same Job.ID is dropped by the server (EnqueueJobs). Default 0: the
	// server's default, 2 minutes.
	Duplicates time.Duration
}

// Queue is a durable job queue: a work-queue stream (a job is removed once
// acknowledged) with one durable pull consumer shared by the Consume calls
// of every node, so each job goes to one worker at a time. Delivery is at
// least once: a handler must tolerate a job it has already done.
type Queue struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	opts       QueueOptions
	root       string // <prefix><Subject>.
	log        *slog.Logger
	dropped    atomic.Uint64
	duplicates atomic.Uint64
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
	if opts.MaxPerSubject <= 0 {
		opts.MaxPerSubject = -1
	}
	if opts.Duplicates < 0 {
		opts.Duplicates = 0
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
		// DiscardOld: past MaxMsgsPerSubject the oldest job of the
		// subject goes, so the newest one is always kept.
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: opts.MaxPerSubject,
		Duplicates:        opts.Duplicates,
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

// Job is one job for EnqueueJobs.
type Job struct {
	// Subject is the job's name under the queue's subject root, like
	// Enqueue's. With MaxPerSubject, it is the job's collapse key.
	Subject string
	// ID, when set, is the job's Nats-Msg-Id: the same ID enqueued again
	// within the Duplicates window is acknowledged without being stored,
	// so a producer that crashed after enqueueing and before recording it
	// can safely enqueue again.
	ID   string
	Data []byte
}

// EnqueueJobs stores jobs, publishing them all before waiting for the
// server's acknowledgements, and returns one error per job: nil once the
// server has persisted the job, or found it a duplicate of one enqueued
// with the same ID within the Duplicates window (counted by Duplicates).
// When ctx ends first, the jobs not yet acknowledged fail with ctx's error;
// they may still be stored.
func (q *Queue) EnqueueJobs(ctx context.Context, jobs []Job) []error {
	errs := make([]error, len(jobs))
	futures := make([]jetstream.PubAckFuture, len(jobs))
	for i, j := range jobs {
		if err := validTopic(j.Subject); err != nil {
			errs[i] = err
			continue
		}
		var opts []jetstream.PublishOpt
		if j.ID != "" {
			opts = append(opts, jetstream.WithMsgID(j.ID))
		}
		f, err := q.js.PublishMsgAsync(&nats.Msg{Subject: q.root + j.Subject, Data: j.Data}, opts...)
		if err != nil {
			errs[i] = fmt.Errorf("natsbus: enqueue %s: %w", j.Subject, jsError(err))
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				q.duplicates.Add(1)
			}
		case err := <-f.Err():
			errs[i] = fmt.Errorf("natsbus: enqueue %s: %w", jobs[i].Subject, jsError(err))
		case <-ctx.Done():
			errs[i] = fmt.Errorf("natsbus: enqueue %s: %w", jobs[i].Subject, ctx.Err())
		}
	}
	return errs
}

// Dropped returns how many jobs this queue's Consume calls gave up on after
// MaxDeliver attempts.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Duplicates returns how many jobs EnqueueJobs found already enqueued under
// their ID.
func (q *Queue) Duplicates() uint64 { return q.duplicates.Load() }

// Delivery is one attempt at a job, as ConsumeJobs hands it over.
type Delivery struct {
	Subject string // the job's subject under the queue's root, as enqueued
	Data    []byte
	Attempt int // 1 on the first delivery; redeliveries after AckWait count too
}

// retryError is a handler's request to retry after a delay of its choice.
type retryError struct {
	delay time.Duration
	err   error
}

func (e *retryError) Error() string { return fmt.Sprintf("retry in %s: %v", e.delay, e.err) }
func (e *retryError) Unwrap() error { return e.err }

// RetryIn makes a handler's failure retry the job after d (0: at once)
// instead of after the queue's Backoff, even while Consume is stopping: a
// handler that read the delay from the far end (a Retry-After) knows
// better. MaxDeliver still applies.
func RetryIn(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &retryError{delay: max(d, 0), err: err}
}

// Consume runs handler for jobs, up to Concurrency at once, until ctx is
// done; it returns nil then, after the running handlers return, or an error
// wrapping chat.ErrUnavailable once the bus is closed. A job whose
// handler returns nil is acknowledged (and leaves the stream); one whose
// handler fails is retried after the backoff delay (or the RetryIn delay),
// and dropped after MaxDeliver attempts. The handler's context ends after
// AckWait, or with ctx. If the consumer stops (deleted, server lost its
// state), Consume recreates it.
func (q *Queue) Consume(ctx context.Context, handler func(ctx context.Context, data []byte) error) error {
	return q.ConsumeJobs(ctx, func(ctx context.Context, d Delivery) error { return handler(ctx, d.Data) })
}

// ConsumeJobs is Consume with the job's subject and attempt number.
func (q *Queue) ConsumeJobs(ctx context.Context, handler func(ctx context.Context, d Delivery) error) error {
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
func (q *Queue) handle(ctx context.Context, m jetstream.Msg, handler func(context.Context, Delivery) error) {
	attempt := uint64(1)
	if md, err := m.Metadata(); err == nil {
		attempt = md.NumDelivered
	}
	hctx, cancel := context.WithTimeout(ctx, q.opts.AckWait)
	err := handler(hctx, Delivery{Subject: strings.TrimPrefix(m.Subject(), q.root), Data: m.Data(), Attempt: int(attempt)})
	cancel()
	var aerr error
	var retry *retryError
	switch {
	case err == nil:
		aerr = m.Ack()
	case q.opts.MaxDeliver > 0 && attempt >= uint64(q.opts.MaxDeliver) && ctx.Err() == nil:
		q.dropped.Add(1)
		q.log.Error("job dropped", "subject", m.Subject(), "attempts", attempt, "err", err)
		aerr = m.TermWithReason(fmt.Sprintf("failed %d times: %v", attempt, err))
	case errors.As(err, &retry) && retry.delay > 0:
		aerr = m.NakWithDelay(retry.delay)
	case errors.As(err, &retry), ctx.Err() != nil:
		aerr = m.Nak() // at once, or shutting down: let another worker have it now
	default:
		delay := q.opts.Backoff[min(int(attempt), len(q.opts.Backoff))-1]
		q.log.Warn("job failed, retrying", "subject", m.Subject(), "attempt", attempt, "in", delay, "err", err)
		aerr = m.NakWithDelay(delay)
	}
	if aerr != nil {
		q.log.Warn("job ack", "subject", m.Subject(), "err", aerr)
	}
}
