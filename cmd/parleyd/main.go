// Command parleyd is the Parley chat server. With no flags it runs the
// embedded default: one process, SQLite and media under ./data, serving
// everything on :8080.
//
// --pprof-addr (off by default) serves net/http/pprof on a separate
// listener, for profiling under load (see docs/benchmarks.md). Bind it to
// loopback: profiles reveal internals and cost CPU while taken.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/internal/server"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "admin" {
		return runAdmin(args[1:], stdout, stderr)
	}
	cfg, extra, err := parseConfig(args, stderr)
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
	if extra.pprofAddr != "" {
		closePprof, err := servePprof(extra.pprofAddr, log)
		if err != nil {
			log.Error("cannot serve pprof", "addr", extra.pprofAddr, "err", err)
			return 1
		}
		defer closePprof()
	}
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

// options are the settings of the command itself, outside server.Config.
type options struct {
	pprofAddr string // serve net/http/pprof here; "" = off
}

// servePprof serves the runtime profiles of net/http/pprof on their own
// listener (never on the public one) until the returned function is called.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Warn("pprof endpoint enabled: do not expose it", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// parseConfig reads flags, each of which may also come from the environment
// variable PARLEY_<FLAG> (upper case, dashes as underscores). Flags win.
func parseConfig(args []string, stderr io.Writer) (server.Config, options, error) {
	cfg := server.DefaultConfig()
	var opt options
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to serve HTTP, the WebSocket and the web client on")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the embedded store (parley.db) and media; created if missing")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate (chain) file: serve HTTPS and wss:// directly; with --tls-key")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key file for --tls-cert")
	fs.StringVar(&cfg.Postgres, "postgres", cfg.Postgres, "PostgreSQL URL (postgres://user:pass@host:5432/db) for the store instead of the embedded SQLite; for several nodes (prefer PARLEY_POSTGRES: flags show in ps)")
	fs.StringVar(&cfg.NATS, "nats", cfg.NATS, "comma-separated NATS URLs (nats://host:4222,...) for the bus between nodes instead of the in-process one")
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "this node's name in a cluster (logs, NATS connection name); default host-pid")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", cfg.SessionTTL, "with --nats: how long a node's sessions live in the cluster's registry without a refresh (refreshed every third of it); a crashed node's users go offline on the other nodes after it")
	fs.StringVar(&cfg.AdvertiseURL, "advertise-url", cfg.AdvertiseURL, "with --nats: the URL at which the other nodes reach this one (http://10.0.0.5:8080); a resumable upload can then be continued through any node, which forwards it to the node holding it")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "heartbeat interval announced to clients; a socket silent for two intervals is closed")
	fs.DurationVar(&cfg.PresenceGrace, "presence-grace", cfg.PresenceGrace, "how long a user stays online after its last socket closed (absorbs reconnects; at most 5s)")
	fs.DurationVar(&cfg.PresenceWindow, "presence-window", cfg.PresenceWindow, "at most one presence change is announced per user per window (batches flapping; at most 5s)")
	fs.IntVar(&cfg.MaxSocketsPerUser, "max-sockets-per-user", cfg.MaxSocketsPerUser, "open WebSocket connections per user on one node; more are refused with 429")
	fs.IntVar(&cfg.TypingRate, "typing-rate", cfg.TypingRate, "typing and presence_subscribe frames per second per socket (burst twice that); more get error 429; 0 means unlimited")
	fs.IntVar(&cfg.FrameRate, "frame-rate", cfg.FrameRate, "frames per second read from one socket (burst twice that), a frame counting one plus one per 4 KiB; past it the server stops reading that socket for a moment, so a flood slows itself down; 0 means unlimited (load tests)")
	fs.IntVar(&cfg.LoginFailuresUser, "login-failures-user", cfg.LoginFailuresUser, "failed logins allowed per username and client address per 10 minutes before that address's logins for it get 429; 0 means unlimited")
	fs.IntVar(&cfg.LoginFailuresUserGlobal, "login-failures-user-global", cfg.LoginFailuresUserGlobal, "failed logins allowed per username per hour from all addresses together; logins naming one of the user's own device_ids are exempt; 0 means unlimited")
	fs.IntVar(&cfg.RegistrationRate, "registration-rate", cfg.RegistrationRate, "registrations per client address per hour (429 past it); 0 means unlimited")
	fs.IntVar(&cfg.ConversationRate, "conversation-rate", cfg.ConversationRate, "groups and new direct conversations one user may create per hour (429 past it); 0 means unlimited")
	fs.StringVar(&cfg.Registration, "registration", cfg.Registration, "who may register: open (anyone), invite (with a single-use invite from 'parleyd admin invite', sent as \"invite\" in the register body) or closed (403 registration_closed)")
	fs.StringVar(&cfg.MetricsToken, "metrics-token", cfg.MetricsToken, "when set, GET /metrics needs \"Authorization: Bearer <token>\" (prefer PARLEY_METRICS_TOKEN: flags show in ps); empty leaves /metrics open")
	proxies := fs.String("trusted-proxies", "", "comma-separated addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For names the client address (for the per-address limits); empty trusts none")
	fs.IntVar(&cfg.LoginFailuresIP, "login-failures-ip", cfg.LoginFailuresIP, "failed logins allowed per client address per minute before its logins get 429; 0 means unlimited")
	fs.IntVar(&cfg.MaxGroupMembers, "max-group-members", cfg.MaxGroupMembers, "largest group, creator included; raise it (with --fanout-direct-max below it) for large channels")
	fs.IntVar(&cfg.FanoutDirectMax, "fanout-direct-max", cfg.FanoutDirectMax, "largest conversation delivered by direct fan-out (one bus publish per member); larger ones are delivered fan-out-on-read: one publish per message, forwarded by each node to its online members. Receipts in those go only to the member's own devices, and joins and leaves are told only to the users concerned")
	fs.IntVar(&cfg.MessageRate, "message-rate", cfg.MessageRate, "messages per minute per user (token bucket, burst of the same size); 0 means unlimited")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, "lifetime of a login token")
	fs.IntVar(&cfg.BcryptCost, "bcrypt-cost", cfg.BcryptCost, "bcrypt cost for password hashes (4-31; each step doubles the time)")
	fs.BoolVar(&cfg.GroupCommit, "group-commit", cfg.GroupCommit, "store concurrent sends in one transaction (one fsync for many messages); false commits one message at a time")
	fs.IntVar(&cfg.MaxBatch, "max-batch", cfg.MaxBatch, "most messages in one group commit")
	fs.IntVar(&cfg.SendQueueLimit, "send-queue", cfg.SendQueueLimit, "frames queued for one socket before it is closed as too slow (close code 4008)")
	fs.Int64Var(&cfg.MaxFrameBytes, "max-frame-bytes", cfg.MaxFrameBytes, "largest WebSocket frame accepted from a client; larger closes the socket (1009)")
	fs.StringVar(&opt.pprofAddr, "pprof-addr", "", "serve net/http/pprof (CPU, heap, goroutine profiles) on this separate address, e.g. 127.0.0.1:6060; empty (the default) turns it off. Keep it on loopback")
	origins := fs.String("allowed-origins", "", "comma-separated extra Origin host patterns allowed to open the WebSocket (same origin is always allowed), e.g. \"chat.example.com,*.example.org\"")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a graceful shutdown waits for sockets and commits")
	pushFlags(fs, &cfg.Push)
	fs.Int64Var(&cfg.MaxUploadBytes, "max-upload-bytes", cfg.MaxUploadBytes, "largest media upload in bytes; larger is refused with 413 (from the declared length, before the body is read)")
	fs.Int64Var(&cfg.MediaQuota, "media-quota", cfg.MediaQuota, "bytes of media one user may hold, finished uploads and the declared size of unfinished ones together; past it 413 quota_exceeded; 0 means none")
	fs.IntVar(&cfg.MaxPendingUploads, "max-pending-uploads", cfg.MaxPendingUploads, "unfinished resumable uploads one user may have at once; past it 429; 0 means unlimited")
	fs.DurationVar(&cfg.MediaGCAfter, "media-gc-after", cfg.MediaGCAfter, "uploads that no message references within this long, and unfinished resumable uploads idle this long, are deleted")
	fs.BoolVar(&cfg.MediaFFmpeg, "media-ffmpeg", cfg.MediaFFmpeg, "use ffmpeg and ffprobe, if found on PATH at start, for video posters, video sizes and audio/video durations (they parse untrusted uploads: false turns them off)")
	fs.StringVar(&cfg.S3Endpoint, "s3-endpoint", cfg.S3Endpoint, "S3-compatible object storage for media: host:port or an http(s) URL; empty keeps media under --data-dir/media")
	fs.StringVar(&cfg.S3Bucket, "s3-bucket", cfg.S3Bucket, "bucket for media (created if missing); required with --s3-endpoint")
	fs.StringVar(&cfg.S3AccessKey, "s3-access-key", cfg.S3AccessKey, "S3 access key id")
	fs.StringVar(&cfg.S3SecretKey, "s3-secret-key", cfg.S3SecretKey, "S3 secret key (prefer the environment variable PARLEY_S3_SECRET_KEY: flags show in ps)")
	fs.StringVar(&cfg.S3Region, "s3-region", cfg.S3Region, "S3 region; empty lets the server decide")
	fs.BoolVar(&cfg.S3Insecure, "s3-insecure", cfg.S3Insecure, "talk plain HTTP to --s3-endpoint (a local test server); an http:// endpoint URL does the same")
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
		return cfg, opt, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, opt, err
	}
	if fs.NArg() > 0 {
		return cfg, opt, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	cfg.TrustedProxies = strings.Split(*proxies, ",")
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	return cfg, opt, cfg.Validate()
}
