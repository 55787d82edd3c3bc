// Command parleyd is the Parley chat server. With no flags it runs the
// embedded default: one process, SQLite and media under ./data, serving
// everything on :8080.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/parley-chat/parley/internal/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "parleyd: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stdout)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		log.Error("server failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg server.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseConfig reads flags, each of which may also come from the environment
// variable PARLEY_<FLAG> (upper case, dashes as underscores). Flags win.
func parseConfig(args []string, stderr io.Writer) (server.Config, error) {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to serve HTTP, the WebSocket and the web client on")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the embedded store (parley.db) and media; created if missing")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "heartbeat interval announced to clients; a socket silent for two intervals is closed")
	fs.DurationVar(&cfg.PresenceGrace, "presence-grace", cfg.PresenceGrace, "how long a user stays online after its last socket closed (absorbs reconnects; at most 5s)")
	fs.DurationVar(&cfg.PresenceWindow, "presence-window", cfg.PresenceWindow, "at most one presence change is announced per user per window (batches flapping; at most 5s)")
	fs.IntVar(&cfg.MaxSocketsPerUser, "max-sockets-per-user", cfg.MaxSocketsPerUser, "open WebSocket connections per user on one node; more are refused with 429")
	fs.IntVar(&cfg.TypingRate, "typing-rate", cfg.TypingRate, "typing and presence_subscribe frames per second per socket (burst twice that); more get error 429; 0 means unlimited")
	fs.IntVar(&cfg.LoginFailuresUser, "login-failures-user", cfg.LoginFailuresUser, "failed logins allowed per username per 10 minutes before logins for it get 429; 0 means unlimited")
	fs.IntVar(&cfg.LoginFailuresIP, "login-failures-ip", cfg.LoginFailuresIP, "failed logins allowed per client address per minute before its logins get 429; 0 means unlimited")
	fs.IntVar(&cfg.MaxGroupMembers, "max-group-members", cfg.MaxGroupMembers, "largest group, creator included")
	fs.IntVar(&cfg.MessageRate, "message-rate", cfg.MessageRate, "messages per minute per user (token bucket, burst of the same size); 0 means unlimited")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, "lifetime of a login token")
	fs.IntVar(&cfg.BcryptCost, "bcrypt-cost", cfg.BcryptCost, "bcrypt cost for password hashes (4-31; each step doubles the time)")
	fs.BoolVar(&cfg.GroupCommit, "group-commit", cfg.GroupCommit, "store concurrent sends in one transaction (one fsync for many messages); false commits one message at a time")
	fs.IntVar(&cfg.MaxBatch, "max-batch", cfg.MaxBatch, "most messages in one group commit")
	fs.IntVar(&cfg.SendQueueLimit, "send-queue", cfg.SendQueueLimit, "frames queued for one socket before it is closed as too slow (close code 4008)")
	fs.Int64Var(&cfg.MaxFrameBytes, "max-frame-bytes", cfg.MaxFrameBytes, "largest WebSocket frame accepted from a client; larger closes the socket (1009)")
	origins := fs.String("allowed-origins", "", "comma-separated extra Origin host patterns allowed to open the WebSocket (same origin is always allowed), e.g. \"chat.example.com,*.example.org\"")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a graceful shutdown waits for sockets and commits")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "parleyd: the Parley chat server.\n\nUsage: parleyd [flags]\n\n")
		fmt.Fprintf(stderr, "Every flag can also be set with the environment variable PARLEY_<FLAG>,\nfor example PARLEY_ADDR=:9090 or PARLEY_DATA_DIR=/var/lib/parley. Flags win.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := "PARLEY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("environment %s=%q: %w", name, v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	return cfg, cfg.Validate()
}
