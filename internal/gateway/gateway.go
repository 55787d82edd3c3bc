// Package gateway is Parley's edge: the REST API and the WebSocket of
// PROTOCOL.md, authentication, per-socket read and write loops with bounded
// queues, and the per-node hub that routes bus events to sockets. It speaks
// the wire format of package proto and calls package chat for every use case;
// it never touches storage.
package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/metrics"
)

// Config tunes the gateway.
type Config struct {
	HeartbeatInterval   time.Duration // announced in ready; silence for twice this closes a socket (30 s)
	MaxFrameBytes       int64         // largest client frame; bigger closes the socket with 1009 (1 MiB)
	MaxBodyBytes        int64         // largest REST request body (1 MiB)
	SendQueueLimit      int           // frames queued per socket before it is closed as slow (1024)
	MaxInflightSends    int           // sends per socket waiting for their commit (256)
	PresenceGrace       time.Duration // how long a user stays online after its last socket closed (1 s)
	PresenceWindow      time.Duration // at most one presence change per user per window (2 s)
	MaxSocketsPerUser   int           // open sockets per user on this node (32)
	MaxWatchesPerSocket int           // users one socket may watch the presence of (1000); past it 422
	TypingRate          int           // typing and presence_subscribe frames per second per socket (10, burst 20); 0: unlimited
	FrameRate           int           // frames per second read from one socket (200, burst 400); over it the reader waits; 0: unlimited
	LoginFailuresUser   int           // failed logins per username and client address per 10 minutes before 429 (10); 0: unlimited
	LoginFailuresIP     int           // failed logins per client address per minute before 429 (50); 0: unlimited
	// LoginFailuresUserGlobal is failed logins per username per hour from
	// all addresses together (100); logins naming one of the user's own
	// devices are exempt. 0: unlimited.
	LoginFailuresUserGlobal int
	RegistrationRate        int            // registrations per client address per hour (300); 0: unlimited
	Registration            string         // RegistrationOpen, RegistrationInvite or RegistrationClosed ("open")
	TrustedProxies          []netip.Prefix // peers whose X-Forwarded-For names the client
	PrekeyClaimsPerClaimer  int            // key claims (GET /keys/{user}) per user per hour (1000); 429 past it; 0: unlimited
	ConversationRate        int            // groups and new direct conversations a user may create per hour (200); 429 past it; 0: unlimited
	PrekeyClaimsPerTarget   int            // one-time prekey claims of one user per hour by everyone (100); past it bundles lack one; 0: unlimited
	AllowedOrigins          []string       // extra Origin host patterns for the WebSocket; same origin always passes
	ReorderHold             time.Duration  // in a cluster, how long a message that overtook a missing seq waits for it (200 ms)
	// ChannelCacheMembers bounds the member ids of fan-out-on-read
	// conversations this node holds (1,048,576, some 70 MB); past it the
	// least recently used member sets are dropped and loaded again on use.
	ChannelCacheMembers int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		HeartbeatInterval:       30 * time.Second,
		MaxFrameBytes:           1 << 20,
		MaxBodyBytes:            1 << 20,
		SendQueueLimit:          1024,
		MaxInflightSends:        256,
		PresenceGrace:           time.Second,
		PresenceWindow:          2 * time.Second,
		MaxSocketsPerUser:       32,
		TypingRate:              10,
		MaxWatchesPerSocket:     1000,
		FrameRate:               200,
		LoginFailuresUser:       10,
		LoginFailuresIP:         50,
		LoginFailuresUserGlobal: 100,
		RegistrationRate:        300,
		Registration:            RegistrationOpen,
		PrekeyClaimsPerClaimer:  1000,
		PrekeyClaimsPerTarget:   100,
		ConversationRate:        200,
		ReorderHold:             200 * time.Millisecond,
		ChannelCacheMembers:     1 << 20,
	}
}

// Gateway serves the API.
type Gateway struct {
	cfg     Config
	svc     *chat.Service
	bus     chat.Bus
	log     *slog.Logger
	metrics *metrics.Metrics
	hub     *hub
	chans   *channels      // forwards fan-out-on-read events; nil in bare test gateways
	poller  *poller        // parks idle plain-TCP sockets (epoll); nil where unavailable
	sockets sync.WaitGroup // sockets still open

	limits *authLimits // login and registration
	quota  quotaLocks

	media *MediaDeps // nil: the media endpoints answer 503
	push  Pusher     // nil: the push endpoints say push is not available
}

// New returns a gateway for svc.
func New(cfg Config, svc *chat.Service, m *metrics.Metrics, log *slog.Logger) *Gateway {
	g := &Gateway{cfg: cfg, svc: svc, bus: svc.Bus(), log: log, metrics: m, limits: newAuthLimits(cfg)}
	g.quota.seed = maphash.MakeSeed()
	g.hub = newHub(g)
	g.poller = newPoller()
	g.chans = startChannels(g)
	return g
}

// Register adds the API's routes to mux.
func (g *Gateway) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/ws", g.serveWS)
	mux.HandleFunc("POST /api/v1/auth/register", g.register)
	mux.HandleFunc("POST /api/v1/auth/login", g.login)
	mux.HandleFunc("POST /api/v1/auth/logout", g.authed(g.logout))
	mux.HandleFunc("GET /api/v1/users/me", g.authed(g.me))
	mux.HandleFunc("DELETE /api/v1/users/me/devices/{device_id}", g.authed(g.revokeDevice))
	mux.HandleFunc("GET /api/v1/users/{user_id}", g.authed(g.user))
	mux.HandleFunc("GET /api/v1/users", g.authed(g.findUsers))
	mux.HandleFunc("POST /api/v1/conversations", g.authed(g.createConversation))
	mux.HandleFunc("GET /api/v1/conversations", g.authed(g.listConversations))
	mux.HandleFunc("GET /api/v1/conversations/{id}", g.authed(g.getConversation))
	mux.HandleFunc("GET /api/v1/conversations/{id}/messages", g.authed(g.messages))
	mux.HandleFunc("POST /api/v1/groups", g.authed(g.createGroup))
	mux.HandleFunc("POST /api/v1/groups/{id}/members", g.authed(g.addMembers))
	mux.HandleFunc("DELETE /api/v1/groups/{id}/members/{user_id}", g.authed(g.removeMember))
	mux.HandleFunc("PATCH /api/v1/groups/{id}", g.authed(g.renameGroup))
	mux.HandleFunc("PUT /api/v1/keys", g.authed(g.putKeys))
	mux.HandleFunc("GET /api/v1/keys/count", g.authed(g.keyCount))
	mux.HandleFunc("GET /api/v1/keys/{user_id}", g.authed(g.claimKeys))
	g.registerPush(mux)
	g.registerSafety(mux)
	mux.HandleFunc("POST /api/v1/media", g.authed(g.uploadMedia))
	mux.HandleFunc("GET /api/v1/media/{media_id}", g.getMedia) // bearer or ?token=
	mux.HandleFunc("GET /api/v1/media/{media_id}/info", g.authed(g.mediaInfo))
	mux.HandleFunc("OPTIONS /api/v1/uploads", g.tusOptions)
	mux.HandleFunc("POST /api/v1/uploads", g.authed(g.createUpload))
	mux.HandleFunc("HEAD /api/v1/uploads/{id}", g.routeUpload(g.authed(g.headUpload)))
	mux.HandleFunc("PATCH /api/v1/uploads/{id}", g.routeUpload(g.authed(g.patchUpload)))
	mux.HandleFunc("DELETE /api/v1/uploads/{id}", g.routeUpload(g.authed(g.deleteUpload)))
	mux.HandleFunc("GET /api/v1/uploads/{id}", g.routeUpload(g.authed(g.uploadStatus)))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// CloseAll closes every socket with "going away", refuses new ones, and
// waits until every socket handler has finished (or ctx ends).
func (g *Gateway) CloseAll(ctx context.Context) error {
	if g.chans != nil {
		defer g.chans.close()
	}
	g.hub.closeAll()
	done := make(chan struct{})
	go func() {
		g.sockets.Wait()
		close(done)
	}()
	select {
	case <-done:
		if g.poller != nil {
			g.poller.close()
		}
		g.hub.mu.RLock()
		c := g.hub.cluster
		g.hub.mu.RUnlock()
		if c != nil {
			c.leave() // the sessions' ends are written before the bus closes
		}
		g.hub.flushOffline(ctx)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sockets still open at shutdown: %d", g.hub.count())
	}
}

// Connections returns the number of open sockets.
func (g *Gateway) Connections() int { return g.hub.count() }

func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authed wraps a handler that needs a session.
func (g *Gateway) authed(h func(http.ResponseWriter, *http.Request, chat.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := g.svc.Authenticate(r.Context(), bearerToken(r))
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		h(w, r, sess)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"status": status, "code": code, "message": msg}})
}

func statusLabel(status int) string { return strconv.Itoa(status) }
