// Package server wires Parley together: it opens the store and the bus named
// by the configuration, builds the chat service and the gateway, serves the
// API, the web client, health, readiness and metrics on one listener, and
// shuts all of it down gracefully.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/gateway"
	"github.com/parley-chat/parley/internal/media"
	"github.com/parley-chat/parley/internal/metrics"
	"github.com/parley-chat/parley/internal/push"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/web"
)

// Server is one parleyd node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   chat.Store
	bus     chat.Bus
	svc     *chat.Service
	gw      *gateway.Gateway
	http    *http.Server
	handler http.Handler

	collector *media.Collector
	gcStop    context.CancelFunc
	gcDone    sync.WaitGroup

	push *push.Service // nil when the store has no push outbox
}

// New opens the backends and builds the node. Close it with Shutdown.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}
	store, storeName, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	bus, busName, err := openBus(ctx, cfg, log)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	if cfg.WrapBus != nil {
		bus = cfg.WrapBus(bus)
	}
	log = log.With("node", cfg.NodeID)
	log.Info("backends open", "store", storeName, "bus", busName)

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	pusher, err := newPush(ctx, cfg, store, bus, reg, log)
	if err != nil {
		_ = bus.Close()
		_ = store.Close()
		return nil, err
	}
	deps := chat.Deps{Store: store, Bus: bus, Hasher: security.NewBcrypt(cfg.BcryptCost), Metrics: m, Logger: log}
	if pusher != nil {
		deps.Observer = pusher
	}
	if lim := security.NewKeyedLimiter(cfg.MessageRate, time.Minute, nil); lim != nil {
		deps.MessageRate = lim
	}
	cc := chat.DefaultConfig()
	cc.MaxGroupMembers = cfg.MaxGroupMembers
	cc.FanoutDirectMax = cfg.FanoutDirectMax
	cc.TokenTTL = cfg.TokenTTL
	cc.MaxBatch = cfg.MaxBatch
	if !cfg.GroupCommit {
		cc.MaxBatch = 1
	}
	svc := chat.NewService(cc, deps)

	gc := gateway.DefaultConfig()
	gc.HeartbeatInterval = cfg.HeartbeatInterval
	gc.PresenceGrace = cfg.PresenceGrace
	gc.PresenceWindow = cfg.PresenceWindow
	gc.MaxSocketsPerUser = cfg.MaxSocketsPerUser
	gc.TypingRate = cfg.TypingRate
	gc.FrameRate = cfg.FrameRate
	gc.LoginFailuresUser = cfg.LoginFailuresUser
	gc.LoginFailuresIP = cfg.LoginFailuresIP
	gc.LoginFailuresUserGlobal = cfg.LoginFailuresUserGlobal
	gc.RegistrationRate = cfg.RegistrationRate
	gc.Registration = cfg.Registration
	gc.ConversationRate = cfg.ConversationRate
	if cfg.MaxWatchesPerSocket > 0 {
		gc.MaxWatchesPerSocket = cfg.MaxWatchesPerSocket
	}
	gc.TrustedProxies, _ = ParsePrefixes(cfg.TrustedProxies) // checked by Validate
	gc.SendQueueLimit = cfg.SendQueueLimit
	gc.MaxFrameBytes = cfg.MaxFrameBytes
	gc.AllowedOrigins = cfg.AllowedOrigins
	gw := gateway.New(gc, svc, m, log)

	s := &Server{cfg: cfg, log: log, store: store, bus: bus, svc: svc, gw: gw, push: pusher}
	err = s.setupMedia(ctx)
	if err == nil {
		err = joinCluster(ctx, cfg, bus, gw) // last: it starts goroutines
	}
	if err != nil {
		svc.Close()
		_ = bus.Close()
		_ = store.Close()
		return nil, err
	}
	s.startPush()
	mux := http.NewServeMux()
	gw.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", metricsAuth(cfg.MetricsToken, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	mux.Handle("/", web.Handler())
	s.handler = countStatus(mux, m)
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// metricsAuth requires "Authorization: Bearer <token>" on /metrics when a
// token is configured (401 otherwise); compared in constant time.
func metricsAuth(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics need the bearer token of --metrics-token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler is the node's whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.svc.Ready(ctx); err != nil {
		s.log.Warn("not ready", "err", err) // the cause goes to the log, not to whoever asks
		which := "a dependency"
		var de *chat.DependencyError
		if errors.As(err, &de) {
			which = "the " + de.Name
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "not ready: "+which+" is down", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	var err error
	if s.cfg.TLSCert != "" {
		err = s.http.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
	} else {
		err = s.http.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Run listens on the configured address and serves until ctx ends, then
// shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Addr, err)
	}
	s.log.Info("parleyd serving", "addr", ln.Addr().String(), "data_dir", s.cfg.DataDir, "tls", s.cfg.TLSCert != "")
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(sctx)
}

// Shutdown stops accepting connections, closes every socket with "going
// away" so clients reconnect elsewhere, finishes the queued commits, and
// closes the store (checkpointing it).
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("shutting down", "sockets", s.gw.Connections())
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Shutdown(ctx) }()
	gerr := s.gw.CloseAll(ctx)
	herr := <-httpDone
	s.gcStop()
	s.gcDone.Wait()
	s.svc.Close()
	s.stopPush()
	berr := s.bus.Close()
	serr := s.store.Close()
	s.log.Info("shut down")
	return errors.Join(gerr, herr, berr, serr)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController (and the WebSocket upgrade) reach the
// underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func countStatus(next http.Handler, m *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/ws" {
			next.ServeHTTP(w, r) // the upgrade hijacks the connection
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.HTTPRequests.WithLabelValues(fmt.Sprint(rec.status)).Inc()
	})
}
