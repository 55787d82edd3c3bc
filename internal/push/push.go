// Package push sends notifications to devices that have no open socket, over
// Web Push (RFC 8291 payload encryption, RFC 8292 VAPID), APNs (HTTP/2 with
// an ES256 provider token), FCM HTTP v1 (OAuth2 service-account tokens) and
// UnifiedPush, talking to each service directly.
//
// # Pipeline
//
// Nothing here runs on the send path. chat.Service tells the Service about
// committed messages and moved receipts through chat.Observer; those calls
// only hand the batch to a buffered channel (a full channel drops and
// counts: the durable part starts at the outbox). The notifier goroutine
// keeps the recipients none of whose devices has a socket (Presence) and
// records them in the store's durable outbox (chat.PushStore), collapsed per
// (user, conversation). The worker turns due rows into one job per
// subscription, at most one per conversation per Config.Window, sends them
// with a pool of senders, and finishes them in batches: sent jobs are
// deleted, a gone subscription is deleted, 429 and 5xx are retried with
// exponential backoff honouring Retry-After. Claimed jobs are leased, so a
// crash mid-send sends them again after the lease: delivery is at least
// once, and the services collapse repeats.
//
// With a Queue (JetStream, when the server runs with --nats) the outbox
// still collapses and holds the window, but the dispatcher hands the jobs
// it claims over to the queue, and every node's consumer sends what the
// queue delivers: retries wait in the queue (a NAK with the delay), a newer
// notification replaces a queued one, and a job a node took and never
// settled goes to another node. See queue.go and package pushjs.
//
// A notification never carries message text (end-to-end encrypted or not):
// "Alice sent you 5 messages", the unread badge, and the conversation id.
package push

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Config tunes push. Zero tunables take the defaults of DefaultConfig.
type Config struct {
	Window       time.Duration // at most one notification per conversation per window (30 s); 0: no window
	VAPIDKeyFile string        // VAPID private key (PEM, PKCS#8 P-256), created 0600 on first start
	VAPIDSubject string        // RFC 8292 "sub": a mailto: or https: contact; "" leaves it out
	APNs         APNsConfig
	FCM          FCMConfig
	CAFile       string // extra PEM roots trusted for push endpoints ("" : the system's)
	// AllowLoopback is for tests: it accepts Web Push and UnifiedPush
	// endpoints on loopback addresses, over plain http as well.
	AllowLoopback bool
	// AllowedHosts, when not empty, is the only hosts Web Push and
	// UnifiedPush endpoints may name: exact names or "*.example.com"
	// patterns (e.g. fcm.googleapis.com, *.push.services.mozilla.com,
	// *.notify.windows.com, web.push.apple.com, your UnifiedPush server).
	AllowedHosts []string

	TTL          time.Duration // how long a push service keeps an undelivered notification (24 h)
	Workers      int           // concurrent sends (16)
	PollInterval time.Duration // outbox poll while idle (250 ms)
	RetryBase    time.Duration // first retry delay, doubled per attempt (1 s)
	RetryMax     time.Duration // longest retry delay (15 min)
	MaxAttempts  int           // attempts before a notification is given up (8)
	Lease        time.Duration // a claimed job unfinished after this is sent again (2 min)
	QueueSize    int           // batches waiting for the notifier (1024)
	MaxPerDevice int           // subscriptions per device (10)
}

// APNsConfig enables APNs with a token-based (.p8) key. All fields but
// Endpoint are required together.
type APNsConfig struct {
	KeyFile  string // the .p8 key (PKCS#8 P-256) from the Apple developer account
	KeyID    string
	TeamID   string
	Topic    string // the app's bundle id
	Endpoint string // https://api.push.apple.com (sandbox: https://api.sandbox.push.apple.com)
}

// FCMConfig enables FCM HTTP v1 with a service-account key.
type FCMConfig struct {
	CredentialsFile string // service-account JSON (client_email, private_key, token_uri, project_id)
	Endpoint        string // https://fcm.googleapis.com; tests point it elsewhere
}

// Defaults.
const (
	DefaultAPNsEndpoint = "https://api.push.apple.com"
	DefaultFCMEndpoint  = "https://fcm.googleapis.com"
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Window:       30 * time.Second,
		APNs:         APNsConfig{Endpoint: DefaultAPNsEndpoint},
		FCM:          FCMConfig{Endpoint: DefaultFCMEndpoint},
		TTL:          24 * time.Hour,
		Workers:      16,
		PollInterval: 250 * time.Millisecond,
		RetryBase:    time.Second,
		RetryMax:     15 * time.Minute,
		MaxAttempts:  8,
		Lease:        2 * time.Minute,
		QueueSize:    1024,
		MaxPerDevice: 10,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.TTL, d.TTL)
	set(&c.PollInterval, d.PollInterval)
	set(&c.RetryBase, d.RetryBase)
	set(&c.RetryMax, d.RetryMax)
	set(&c.Lease, d.Lease)
	for _, p := range []struct{ v, def *int }{{&c.Workers, &d.Workers}, {&c.MaxAttempts, &d.MaxAttempts}, {&c.QueueSize, &d.QueueSize}, {&c.MaxPerDevice, &d.MaxPerDevice}} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	if c.APNs.Endpoint == "" {
		c.APNs.Endpoint = d.APNs.Endpoint
	}
	if c.FCM.Endpoint == "" {
		c.FCM.Endpoint = d.FCM.Endpoint
	}
	return c
}

// Validate reports every problem of the flags' part of the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Window < 0 || c.Window > 24*time.Hour {
		bad("--push-window must be between 0 and 24h, not %s", c.Window)
	}
	if s := c.VAPIDSubject; s != "" && !strings.HasPrefix(s, "mailto:") && !strings.HasPrefix(s, "https://") {
		bad("--vapid-subject must be a mailto: or https: URL, not %q", s)
	}
	a := c.APNs
	if set := []bool{a.KeyFile != "", a.KeyID != "", a.TeamID != "", a.Topic != ""}; set[0] || set[1] || set[2] || set[3] {
		if !(set[0] && set[1] && set[2] && set[3]) {
			bad("APNs needs --apns-key-file, --apns-key-id, --apns-team-id and --apns-topic together")
		}
	}
	for _, e := range []struct{ flag, v string }{{"--apns-endpoint", a.Endpoint}, {"--fcm-endpoint", c.FCM.Endpoint}} {
		if e.v == "" {
			continue
		}
		if u, err := url.Parse(e.v); err != nil || u.Host == "" || (u.Scheme != "https" && !(c.AllowLoopback && u.Scheme == "http")) {
			bad("%s must be an https URL, not %q", e.flag, e.v)
		}
	}
	return errors.Join(errs...)
}

// Presence tells whether a user, or one of its devices, has an open socket.
type Presence interface {
	Online(userID string) bool
	DeviceOnline(userID, deviceID string) bool
}

// Metrics observes the pipeline. All methods must be cheap.
type Metrics interface {
	Recorded(n int)                                    // events recorded in the outbox
	Dropped(n int)                                     // batches dropped: the hand-off queue was full
	Queued(n int)                                      // jobs queued (alerts and clears)
	Sent(platform, outcome string, took time.Duration) // one send attempt, once its outcome is stored
}

// Outcome labels of Metrics.Sent.
const (
	OutcomeSent    = "sent"    // accepted by the push service
	OutcomeRetry   = "retry"   // 429, 5xx, network: retried later
	OutcomeGone    = "gone"    // the subscription no longer exists: deleted
	OutcomeFailed  = "failed"  // refused for good, or out of attempts: dropped
	OutcomeSkipped = "skipped" // the user (or device) came online: not sent
)

type nopMetrics struct{}

func (nopMetrics) Recorded(int)                       {}
func (nopMetrics) Dropped(int)                        {}
func (nopMetrics) Queued(int)                         {}
func (nopMetrics) Sent(string, string, time.Duration) {}

// Deps are the service's collaborators. Store is required.
type Deps struct {
	Store   chat.PushStore
	Metrics Metrics // nil: none
	Logger  *slog.Logger
	Now     func() time.Time // nil: time.Now
	// RootCAs replaces the system roots for every push connection (tests);
	// Config.CAFile adds to whichever roots are used.
	RootCAs *x509.CertPool
	// Queue, when set (JetStream with --nats), carries the jobs from the
	// outbox to the senders of every node; nil: this node sends the jobs it
	// claims from the outbox itself.
	Queue Queue
}

// Service is the push subsystem: the subscription API, the observer that
// records notifications, and the worker that sends them.
type Service struct {
	cfg     Config
	store   chat.PushStore
	metrics Metrics
	log     *slog.Logger
	now     func() time.Time
	ids     chat.IDGen
	vapid   *vapidKey
	senders map[string]sender

	presence Presence
	queue    Queue // nil: the store outbox alone
	events   chan []chat.AppendResult
	reads    chan []chat.Watermark
	wake     chan struct{}
	jobs     chan chat.PushJob
	results  chan outcome
	inflight atomic.Int64

	stop      chan struct{}
	halt      context.Context // ends when Close begins
	halted    context.CancelFunc
	consume   context.CancelFunc // stops the queue's consumer taking jobs
	sendCtx   context.Context
	cancel    context.CancelFunc
	started   bool
	closeOnce sync.Once
	loops     sync.WaitGroup // notifier and dispatcher
	workers   sync.WaitGroup // senders
	finisher  sync.WaitGroup
}

// New loads (or creates) the VAPID key and the configured providers'
// credentials. Start begins the work; Close ends it.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil {
		return nil, errors.New("push: a store with a push outbox is required")
	}
	cfg = cfg.withDefaults()
	s := &Service{cfg: cfg, store: d.Store, metrics: d.Metrics, log: d.Logger, now: d.Now, queue: d.Queue,
		events: make(chan []chat.AppendResult, cfg.QueueSize), reads: make(chan []chat.Watermark, cfg.QueueSize),
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
		jobs: make(chan chat.PushJob, max(claimBatch, 8*cfg.Workers)), results: make(chan outcome, max(claimBatch, 8*cfg.Workers))}
	if s.metrics == nil {
		s.metrics = nopMetrics{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if s.vapid, err = loadVAPID(cfg.VAPIDKeyFile, cfg.VAPIDSubject, s.now); err != nil {
		return nil, err
	}
	clients, err := newClients(cfg, d.RootCAs)
	if err != nil {
		return nil, err
	}
	s.senders = map[string]sender{
		chat.PlatformWebPush:     &webPushSender{client: clients.endpoints, vapid: s.vapid, ttl: cfg.TTL},
		chat.PlatformUnifiedPush: &webPushSender{client: clients.endpoints, ttl: cfg.TTL},
	}
	if cfg.APNs.KeyFile != "" {
		a, err := newAPNs(cfg.APNs, clients.apns, cfg.TTL, s.now)
		if err != nil {
			return nil, err
		}
		s.senders[chat.PlatformAPNs] = a
	}
	if cfg.FCM.CredentialsFile != "" {
		f, err := newFCM(cfg.FCM, clients.services, cfg.TTL, s.now)
		if err != nil {
			return nil, err
		}
		s.senders[chat.PlatformFCM] = f
	}
	s.sendCtx, s.cancel = context.WithCancel(context.Background())
	s.halt, s.halted = context.WithCancel(context.Background())
	return s, nil
}

// Platforms lists the platforms this server offers.
func (s *Service) Platforms() []string {
	var out []string
	for _, p := range []string{chat.PlatformWebPush, chat.PlatformAPNs, chat.PlatformFCM, chat.PlatformUnifiedPush} {
		if s.senders[p] != nil {
			out = append(out, p)
		}
	}
	return out
}

// VAPIDPublicKey is the application server key browsers subscribe with:
// the uncompressed P-256 point, base64url without padding.
func (s *Service) VAPIDPublicKey() string { return s.vapid.public }

// Start begins recording and sending; presence answers who has a socket.
func (s *Service) Start(presence Presence) {
	s.presence = presence
	s.started = true
	s.loops.Add(2)
	go s.notifyLoop()
	go s.dispatchLoop()
	if s.queue != nil {
		var ctx context.Context
		ctx, s.consume = context.WithCancel(context.Background())
		s.workers.Add(1)
		go s.consumeLoop(ctx)
		return
	}
	s.workers.Add(s.cfg.Workers)
	for range s.cfg.Workers {
		go s.sendLoop()
	}
	s.finisher.Add(1)
	go s.finishLoop()
}

// Close stops the pipeline: events already handed over are recorded, sends
// in flight get a few seconds to finish, and their outcomes are stored.
// What is left stays in the outbox (or the queue) for the next start.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.halted()
		defer s.cancel()
		if !s.started {
			return
		}
		s.loops.Wait()
		if s.queue != nil {
			s.consume() // take no more jobs; those in flight finish below
		}
		done := make(chan struct{})
		go func() { s.workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.cancel() // abandon what is still in flight
			<-done
		}
		if s.queue != nil {
			return
		}
		close(s.results)
		s.finisher.Wait()
	})
}
