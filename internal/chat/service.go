package chat

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// Hasher hashes and verifies passwords with a slow salted hash.
type Hasher interface {
	Hash(password string) ([]byte, error)
	Verify(hash []byte, password string) bool
}

// Limiter decides whether the holder of key may act now; when not, it says
// how long to wait. Implementations are safe for concurrent use.
type Limiter interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// Metrics observes the service's hot path. All methods must be cheap.
type Metrics interface {
	// CommitBatch is called after each group commit with its size and duration.
	CommitBatch(size int, took time.Duration, err error)
	// Published counts events handed to the bus and publish failures.
	Published(events int, failures int)
	// Fanout counts the bus publishes that delivered one event, by route
	// (RouteDirect or RouteChannel), and whether it was a new message.
	Fanout(route string, message bool, publishes int)
}

// Config tunes the service. Zero fields take the defaults of DefaultConfig.
type Config struct {
	MaxGroupMembers  int           // largest group, creator included (256)
	TokenTTL         time.Duration // how long a login token lives (30 days)
	MaxBatch         int           // most messages in one group commit (256); 1 turns group commit off
	SyncDefaultLimit int           // messages per conversation in a sync without limit (100)
	SyncMaxLimit     int           // largest accepted sync limit (1000)
	// FanoutDirectMax is the largest conversation delivered directly (one
	// bus publish per member); larger ones are delivered fan-out-on-read
	// (one publish on ChannelTopic per event, see channels.go). (256, the
	// default MaxGroupMembers: only groups allowed beyond it are channels.)
	FanoutDirectMax int
	// SuspensionPoll is how often the service looks for accounts suspended
	// (by the admin tool, possibly in another process) to close their open
	// sockets (2 s).
	SuspensionPoll time.Duration
	// HashConcurrency is how many registrations may hash a password at
	// once (half the CPUs, at least 1); the others wait their turn.
	HashConcurrency int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxGroupMembers:  256,
		TokenTTL:         30 * 24 * time.Hour,
		MaxBatch:         256,
		SyncDefaultLimit: 100,
		SyncMaxLimit:     1000,
		FanoutDirectMax:  256,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxGroupMembers <= 0 {
		c.MaxGroupMembers = d.MaxGroupMembers
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.SyncDefaultLimit <= 0 {
		c.SyncDefaultLimit = d.SyncDefaultLimit
	}
	if c.SyncMaxLimit <= 0 {
		c.SyncMaxLimit = d.SyncMaxLimit
	}
	if c.FanoutDirectMax <= 0 {
		c.FanoutDirectMax = d.FanoutDirectMax
	}
	if c.SuspensionPoll <= 0 {
		c.SuspensionPoll = 2 * time.Second
	}
	if c.HashConcurrency <= 0 {
		c.HashConcurrency = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return c
}

// Deps are the service's collaborators. Store, Bus and Hasher are required.
type Deps struct {
	Store       Store
	Bus         Bus
	Hasher      Hasher
	MessageRate Limiter // per user; nil: unlimited
	Metrics     Metrics // nil: none
	Logger      *slog.Logger
	Now         func() time.Time // nil: time.Now
	Observer    Observer         // nil: none; told about commits and receipts, off the hot path
}

// Service implements Parley's use cases on top of a Store and a Bus.
type Service struct {
	cfg     Config
	store   Store
	keys    KeyStore  // nil when the store has no key directory
	pushes  PushStore // nil when the store has no push outbox
	observe Observer  // nil: none
	bus     Bus
	hasher  Hasher
	rate    Limiter
	metrics Metrics
	log     *slog.Logger
	now     func() time.Time
	ids     IDGen
	large   largeSet // conversations last seen fan-out-on-read (a hint for typing)

	hashSlots chan struct{} // registrations hashing a password now (HashConcurrency)

	sends    chan *sendReq
	receipts chan receiptReq
	seen     chan deviceSeen
	publish  chan []committed
	stop     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.RWMutex
	closed   bool
}

// NewService returns a started service; Close stops it.
func NewService(cfg Config, d Deps) *Service {
	s := &Service{
		cfg:     cfg.withDefaults(),
		store:   d.Store,
		bus:     d.Bus,
		hasher:  d.Hasher,
		rate:    d.MessageRate,
		metrics: d.Metrics,
		log:     d.Logger,
		now:     d.Now,
		observe: d.Observer,
		stop:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.keys, _ = d.Store.(KeyStore)
	s.pushes, _ = d.Store.(PushStore)
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = nopMetrics{}
	}
	s.hashSlots = make(chan struct{}, s.cfg.HashConcurrency)
	s.sends = make(chan *sendReq, 4*s.cfg.MaxBatch)
	s.receipts = make(chan receiptReq, 4096)
	s.seen = make(chan deviceSeen, 4096)
	s.publish = make(chan []committed, 1024)
	s.wg.Add(4)
	go s.commitLoop()
	go s.publishLoop()
	go s.receiptLoop()
	go s.seenLoop()
	if st, ok := d.Store.(SafetyStore); ok {
		s.wg.Add(1)
		go s.suspensionLoop(st)
	}
	return s
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Now returns the service's clock reading.
func (s *Service) Now() time.Time { return s.now() }

// Close stops accepting work, finishes what was queued, and returns when the
// background loops have stopped. It does not close the store or the bus.
func (s *Service) Close() {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	s.closeMu.Unlock()
	s.wg.Wait()
}

// DependencyError says which dependency failed a readiness check.
type DependencyError struct {
	Name string // "store" or "bus"
	Err  error
}

func (e *DependencyError) Error() string { return e.Name + ": " + e.Err.Error() }

// Unwrap makes errors.Is(err, ErrUnavailable) hold and keeps the cause.
func (e *DependencyError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Ready checks the store and the bus; a failure is a *DependencyError.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return &DependencyError{Name: "store", Err: err}
	}
	if err := s.bus.Ping(ctx); err != nil {
		return &DependencyError{Name: "bus", Err: err}
	}
	return nil
}

// Bus returns the bus the service publishes on.
func (s *Service) Bus() Bus { return s.bus }

// publishTo publishes ev to each user's topic and counts failures.
func (s *Service) publishTo(ctx context.Context, userIDs []string, ev *Event) {
	failures := 0
	for _, uid := range userIDs {
		if err := s.bus.Publish(ctx, UserTopic(uid), ev); err != nil {
			failures++
			if failures == 1 {
				s.log.Warn("bus publish failed; devices will repair with sync", "err", err)
			}
		}
	}
	s.metrics.Published(len(userIDs), failures)
	s.metrics.Fanout(RouteDirect, ev.Kind == EventMessage, len(userIDs))
}

type nopMetrics struct{}

func (nopMetrics) CommitBatch(int, time.Duration, error) {}
func (nopMetrics) Published(int, int)                    {}
func (nopMetrics) Fanout(string, bool, int)              {}
