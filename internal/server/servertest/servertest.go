// Package servertest starts a real parleyd node in-process for tests: the
// embedded SQLite store in a temporary data directory, the in-process bus, and
// a real listener on 127.0.0.1.
package servertest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
)

// Server is a running node.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	WSURL   string // ws://127.0.0.1:PORT/api/v1/ws
	Config  server.Config
	Node    *server.Server
	stopped bool
	t       testing.TB
}

// Start runs a node until the test ends. opts adjust the configuration; the
// defaults for tests are a cheap bcrypt cost and no message or registration
// rate limit.
func Start(t testing.TB, opts ...func(*server.Config)) *Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.BcryptCost = 4
	cfg.MessageRate = 0
	cfg.RegistrationRate = 0 // tests register many users from 127.0.0.1
	cfg.ShutdownTimeout = 5 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	return StartConfig(t, cfg)
}

// StartConfig runs a node with exactly cfg (Addr is ignored: a free port on
// 127.0.0.1 is used).
func StartConfig(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	scheme, ws := "http://", "ws://"
	if cfg.TLSCert != "" {
		scheme, ws = "https://", "wss://"
	}
	if cfg.NATS != "" && cfg.AdvertiseURL == "" {
		cfg.AdvertiseURL = scheme + addr // cluster nodes reach each other (upload routing)
	}
	node, err := server.New(context.Background(), cfg, log)
	if err != nil {
		ln.Close()
		t.Fatalf("starting parleyd: %v", err)
	}
	go func() { _ = node.Serve(ln) }()
	s := &Server{URL: scheme + addr, WSURL: ws + addr + "/api/v1/ws", Config: cfg, Node: node, t: t}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the node down gracefully (idempotent).
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), s.Config.ShutdownTimeout)
	defer cancel()
	if err := s.Node.Shutdown(ctx); err != nil {
		s.t.Logf("shutdown: %v", err)
	}
}

// Restart stops the node and starts a new one on the same data directory.
func (s *Server) Restart() *Server {
	s.Stop()
	return StartConfig(s.t, s.Config)
}
