package server

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/gateway"
	"github.com/parley-chat/parley/internal/push"
)

// Config is every setting of parleyd. Flags and PARLEY_* environment
// variables fill it (cmd/parleyd); tests build it directly.
type Config struct {
	Addr    string // listen address
	DataDir string // embedded store and media live here

	// TLS: both set serves HTTPS (and wss://) directly.
	TLSCert string // PEM certificate chain file
	TLSKey  string // PEM private key file

	// Scale-out backends: empty means the embedded default.
	Postgres string // PostgreSQL URL for the store
	NATS     string // comma-separated NATS URLs for the bus
	NodeID   string // this node's name in the cluster (default host-pid)
	// SessionTTL is how long a node's sessions outlive it in the cluster's
	// registry (with NATS): a crashed node's users go offline after it.
	SessionTTL time.Duration
	// AdvertiseURL is how the other nodes reach this one (with NATS): a
	// resumable upload can then be continued through any node.
	AdvertiseURL string

	LogLevel  string // debug, info, warn, error
	LogFormat string // text or json

	HeartbeatInterval time.Duration
	PresenceGrace     time.Duration
	PresenceWindow    time.Duration
	MaxSocketsPerUser int
	TypingRate        int // typing/presence frames per second per socket
	FrameRate         int // frames per second read from one socket
	LoginFailuresUser int // failed logins per username per 10 minutes
	LoginFailuresIP   int // failed logins per address per minute
	// LoginFailuresUserGlobal is failed logins per username per hour from
	// all addresses together; logins naming a known device are exempt.
	LoginFailuresUserGlobal int
	RegistrationRate        int      // registrations per client address per hour; 0 = unlimited
	Registration            string   // open, invite or closed
	TrustedProxies          []string // addresses or CIDR prefixes whose X-Forwarded-For is believed
	MetricsToken            string   // when set, /metrics needs "Authorization: Bearer <token>"
	MaxWatchesPerSocket     int      // users one socket may watch the presence of (1000); not a flag
	ConversationRate        int      // groups and new direct conversations per user per hour; 0 = unlimited
	MaxGroupMembers         int
	FanoutDirectMax         int // conversations with more members are delivered fan-out-on-read
	MessageRate             int // messages per minute per user; 0 = unlimited
	TokenTTL                time.Duration
	BcryptCost              int
	GroupCommit             bool // batch concurrent sends into one transaction
	MaxBatch                int  // most messages per group commit
	SendQueueLimit          int  // frames queued per socket before it is closed as slow
	MaxFrameBytes           int64
	AllowedOrigins          []string
	ShutdownTimeout         time.Duration

	// Media.
	MaxUploadBytes int64         // largest upload (100 MB)
	MediaGCAfter   time.Duration // uploads never sent within this are deleted (24h)
	MediaQuota     int64         // bytes of media per user, finished and unfinished uploads (1 GiB); 0 = none
	// MaxPendingUploads is the most unfinished resumable uploads per user (20); 0 = unlimited.
	MaxPendingUploads int
	MediaFFmpeg       bool // use ffmpeg/ffprobe from PATH for video posters and durations (true)
	// S3-compatible object storage for media; empty S3Endpoint keeps media
	// on the local disk under DataDir/media.
	S3Endpoint  string
	S3Bucket    string
	S3AccessKey string
	S3SecretKey string
	S3Region    string
	S3Insecure  bool // plain HTTP to the endpoint

	// Push notifications: the collapse window, VAPID, APNs and FCM.
	Push push.Config

	// WrapBus, when set, wraps the bus opened from the configuration
	// (tests: counting publishes, injecting faults). Not a flag.
	WrapBus func(chat.Bus) chat.Bus
}

// DefaultConfig returns the defaults documented in --help.
func DefaultConfig() Config {
	cd, gd := chat.DefaultConfig(), gateway.DefaultConfig()
	return Config{
		Addr:                    ":8080",
		DataDir:                 "./data",
		SessionTTL:              30 * time.Second,
		LogLevel:                "info",
		LogFormat:               "text",
		HeartbeatInterval:       gd.HeartbeatInterval,
		PresenceGrace:           gd.PresenceGrace,
		PresenceWindow:          gd.PresenceWindow,
		MaxSocketsPerUser:       gd.MaxSocketsPerUser,
		TypingRate:              gd.TypingRate,
		FrameRate:               gd.FrameRate,
		LoginFailuresUser:       gd.LoginFailuresUser,
		LoginFailuresIP:         gd.LoginFailuresIP,
		LoginFailuresUserGlobal: gd.LoginFailuresUserGlobal,
		RegistrationRate:        gd.RegistrationRate,
		Registration:            gd.Registration,
		MaxWatchesPerSocket:     gd.MaxWatchesPerSocket,
		ConversationRate:        gd.ConversationRate,
		MaxGroupMembers:         cd.MaxGroupMembers,
		FanoutDirectMax:         cd.FanoutDirectMax,
		MessageRate:             100,
		TokenTTL:                cd.TokenTTL,
		BcryptCost:              10,
		GroupCommit:             true,
		MaxBatch:                cd.MaxBatch,
		SendQueueLimit:          gd.SendQueueLimit,
		MaxFrameBytes:           gd.MaxFrameBytes,
		ShutdownTimeout:         10 * time.Second,
		MaxUploadBytes:          100 << 20,
		MediaGCAfter:            24 * time.Hour,
		MediaFFmpeg:             true,
		Push:                    push.DefaultConfig(),
	}
}

// ParsePrefixes parses addresses ("10.0.0.5") and CIDR prefixes
// ("10.0.0.0/8", "fd00::/8").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Addr == "" {
		bad("--addr must not be empty")
	}
	if c.DataDir == "" {
		bad("--data-dir must not be empty")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	for _, f := range []string{c.TLSCert, c.TLSKey} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				bad("TLS file: %v", err)
			}
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("--log-format must be text or json, not %q", c.LogFormat)
	}
	if c.AdvertiseURL != "" {
		if u, err := url.Parse(c.AdvertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--advertise-url must be an http(s) URL such as http://10.0.0.5:8080, not %q", c.AdvertiseURL)
		}
	}
	if c.NATS != "" && c.SessionTTL < time.Second {
		bad("--session-ttl must be at least 1s, not %s", c.SessionTTL)
	}
	if c.HeartbeatInterval < 100*time.Millisecond {
		bad("--heartbeat-interval must be at least 100ms, not %s", c.HeartbeatInterval)
	}
	if c.PresenceGrace < 0 || c.PresenceGrace > 5*time.Second {
		bad("--presence-grace must be between 0 and 5s (the protocol allows 5 s of batching), not %s", c.PresenceGrace)
	}
	if c.PresenceWindow < 0 || c.PresenceWindow > 5*time.Second {
		bad("--presence-window must be between 0 and 5s, not %s", c.PresenceWindow)
	}
	if c.MaxSocketsPerUser < 1 {
		bad("--max-sockets-per-user must be at least 1, not %d", c.MaxSocketsPerUser)
	}
	if c.TypingRate < 0 || c.FrameRate < 0 || c.LoginFailuresUser < 0 || c.LoginFailuresIP < 0 {
		bad("--typing-rate, --login-failures-user and --login-failures-ip must not be negative (0 means unlimited)")
	}
	if c.LoginFailuresUserGlobal < 0 || c.RegistrationRate < 0 || c.ConversationRate < 0 {
		bad("--login-failures-user-global and --registration-rate must not be negative (0 means unlimited)")
	}
	switch c.Registration {
	case gateway.RegistrationOpen, gateway.RegistrationInvite, gateway.RegistrationClosed:
	default:
		bad("--registration must be open, invite or closed, not %q", c.Registration)
	}
	if _, err := ParsePrefixes(c.TrustedProxies); err != nil {
		bad("--trusted-proxies: %v", err)
	}
	if c.MaxGroupMembers < 2 {
		bad("--max-group-members must be at least 2, not %d", c.MaxGroupMembers)
	}
	if c.FanoutDirectMax < 1 {
		bad("--fanout-direct-max must be at least 1, not %d", c.FanoutDirectMax)
	}
	if c.MessageRate < 0 {
		bad("--message-rate must not be negative (0 means unlimited)")
	}
	if c.TokenTTL < time.Minute {
		bad("--token-ttl must be at least 1m, not %s", c.TokenTTL)
	}
	if c.BcryptCost < 4 || c.BcryptCost > 31 {
		bad("--bcrypt-cost must be between 4 and 31, not %d", c.BcryptCost)
	}
	if c.MaxBatch < 1 {
		bad("--max-batch must be at least 1, not %d", c.MaxBatch)
	}
	if c.SendQueueLimit < 16 {
		bad("--send-queue must be at least 16, not %d", c.SendQueueLimit)
	}
	if c.MaxFrameBytes < 128<<10 {
		bad("--max-frame-bytes must be at least 131072 (a 64 KiB message plus JSON), not %d", c.MaxFrameBytes)
	}
	if c.ShutdownTimeout <= 0 {
		bad("--shutdown-timeout must be positive")
	}
	if c.MaxUploadBytes < 1 || c.MaxUploadBytes > 1<<40 {
		bad("--max-upload-bytes must be between 1 and 1 TiB, not %d", c.MaxUploadBytes)
	}
	if c.MediaQuota < 0 || c.MaxPendingUploads < 0 {
		bad("--media-quota and --max-pending-uploads must not be negative (0 means none)")
	}
	if c.MediaGCAfter < time.Second {
		bad("--media-gc-after must be at least 1s, not %s", c.MediaGCAfter)
	}
	switch {
	case c.S3Endpoint != "" && c.S3Bucket == "":
		bad("--s3-bucket is required with --s3-endpoint")
	case c.S3Endpoint == "" && (c.S3Bucket != "" || c.S3AccessKey != "" || c.S3SecretKey != ""):
		bad("--s3-bucket and the S3 credentials need --s3-endpoint")
	case c.S3Endpoint != "" && (c.S3AccessKey == "") != (c.S3SecretKey == ""):
		bad("--s3-access-key and --s3-secret-key go together")
	}
	if err := c.Push.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
