package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
	"github.com/parley-chat/parley/internal/security"
)

// Registration modes (--registration).
const (
	RegistrationOpen   = "open"
	RegistrationInvite = "invite" // a single-use invite from "parleyd admin invite"
	RegistrationClosed = "closed"
)

// authLimits are the limits of the unauthenticated endpoints. Every attempt
// takes its tokens before any password is hashed or checked, and gives them
// back if it turns out fine, so parallel attempts are limited exactly like
// sequential ones and the owner's successful logins never use a limit up.
type authLimits struct {
	pair     *security.Buckets // username+address: LoginFailuresUser per 10 min
	user     *security.Buckets // username, any address: LoginFailuresUserGlobal per hour; known devices exempt
	addr     *security.Buckets // address, any username: LoginFailuresIP per minute
	register *security.Buckets // address: RegistrationRate per hour
	claimer  *security.Buckets // user: PrekeyClaimsPerClaimer per hour
	target   *security.Buckets // claimed user: PrekeyClaimsPerTarget per hour
	convs    *security.Buckets // user: ConversationRate new conversations per hour

	mu       sync.Mutex
	inflight map[string]int // logins being checked, by address (bounded by open requests)
}

func newAuthLimits(cfg Config) *authLimits {
	return &authLimits{
		inflight: make(map[string]int),
		pair:     security.NewBuckets(cfg.LoginFailuresUser, 10*time.Minute, 0, nil),
		user:     security.NewBuckets(cfg.LoginFailuresUserGlobal, time.Hour, 0, nil),
		addr:     security.NewBuckets(cfg.LoginFailuresIP, time.Minute, 0, nil),
		register: security.NewBuckets(cfg.RegistrationRate, time.Hour, 0, nil),
		claimer:  security.NewBuckets(cfg.PrekeyClaimsPerClaimer, time.Hour, 0, nil),
		target:   security.NewBuckets(cfg.PrekeyClaimsPerTarget, time.Hour, 0, nil),
		convs:    security.NewBuckets(cfg.ConversationRate, time.Hour, 0, nil),
	}
}

// taken is the tokens taken for one attempt, to give back together.
type taken []takenToken

type takenToken struct {
	b      *security.Buckets
	key    string
	ticket security.Ticket
	strict bool // give back only if no other attempt on key came since
}

// take takes a token; a strict one is given back on success only if the
// attempt was alone on its key (see Buckets.RefundAlone).
func (t *taken) take(b *security.Buckets, key string, strict bool) (bool, time.Duration) {
	ok, wait, tk := b.TakeTicket(key)
	if ok {
		*t = append(*t, takenToken{b, key, tk, strict})
	}
	return ok, wait
}

// refund gives every token back (the attempt was refused or taught nothing).
func (t taken) refund() {
	for _, x := range t {
		x.b.Refund(x.key)
	}
}

// succeeded gives the tokens of a successful attempt back.
func (t taken) succeeded() {
	for _, x := range t {
		if x.strict {
			x.b.RefundAlone(x.key, x.ticket)
		} else {
			x.b.Refund(x.key)
		}
	}
}

func (g *Gateway) register(w http.ResponseWriter, r *http.Request) {
	if g.cfg.Registration == RegistrationClosed {
		g.writeError(w, r, fmt.Errorf("%w: registration is closed on this server", chat.ErrRegistrationClosed))
		return
	}
	var req proto.RegisterRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	var tk taken
	if ok, wait := tk.take(g.limits.register, g.clientIP(r), false); !ok {
		g.writeError(w, r, &chat.RateLimitError{RetryAfter: wait})
		return
	}
	register := g.svc.Register
	if g.cfg.Registration == RegistrationInvite {
		register = func(ctx context.Context, username, password, displayName string) (chat.User, error) {
			return g.svc.RegisterInvited(ctx, req.Invite, username, password, displayName)
		}
	}
	u, err := register(r.Context(), req.Username, req.Password, req.DisplayName)
	if err != nil {
		// A taken name was learned (enumeration): that attempt counts.
		// Malformed requests and faults taught nothing.
		if !errors.Is(err, chat.ErrConflict) {
			tk.refund()
		}
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, wireUser(u))
}

func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	var req proto.LoginRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	if req.Username == "" || req.Password == "" {
		g.writeError(w, r, fmt.Errorf("%w: username and password are required", chat.ErrBadRequest))
		return
	}
	ip := g.clientIP(r)
	var tk taken
	refuse := func(wait time.Duration) {
		tk.refund()
		g.writeError(w, r, &chat.RateLimitError{RetryAfter: wait})
	}
	if ok, wait := g.takeAddr(r.Context(), &tk, ip); !ok {
		refuse(wait)
		return
	}
	defer g.limits.flight(ip, -1)
	// A name that cannot exist is refused before it is stored anywhere: the
	// per-username buckets only ever hold valid names (as hashes).
	if !chat.ValidUsername(req.Username) || len(req.Password) > chat.MaxPasswordBytes {
		g.writeError(w, r, fmt.Errorf("%w: wrong username or password", chat.ErrUnauthorized))
		return
	}
	if ok, wait := tk.take(g.limits.pair, req.Username+"\x00"+ip, true); !ok {
		refuse(wait)
		return
	}
	if g.limits.user != nil && !g.knownDevice(r.Context(), req.Username, req.DeviceID) {
		if ok, wait := tk.take(g.limits.user, req.Username, true); !ok {
			refuse(wait)
			return
		}
	}
	res, err := g.svc.Login(r.Context(), req.Username, req.Password, req.DeviceName, req.DeviceID)
	if err != nil {
		if !errors.Is(err, chat.ErrUnauthorized) {
			tk.refund() // only wrong credentials count
		}
		g.writeError(w, r, err)
		return
	}
	tk.succeeded()
	writeJSON(w, http.StatusOK, proto.LoginResponse{Token: res.Token, UserID: res.Session.UserID, DeviceID: res.Session.DeviceID, ExpiresAt: res.Session.ExpiresAt})
}

// takeAddr takes the address's token for a login. When the bucket is empty
// only because attempts from the address are still being checked (many
// users behind one address logging in at once), it waits for them: their
// successes give their tokens back. It counts the attempt in flight.
func (g *Gateway) takeAddr(ctx context.Context, tk *taken, ip string) (bool, time.Duration) {
	g.limits.flight(ip, +1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, wait := tk.take(g.limits.addr, ip, false)
		if ok || g.limits.flight(ip, 0) <= 1 || time.Now().After(deadline) {
			if !ok {
				g.limits.flight(ip, -1)
			}
			return ok, wait
		}
		select {
		case <-ctx.Done():
			g.limits.flight(ip, -1)
			return false, time.Second
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// flight adds d to the logins in flight from ip and returns the count.
func (l *authLimits) flight(ip string, d int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.inflight[ip] + d
	if n <= 0 {
		delete(l.inflight, ip)
		return 0
	}
	l.inflight[ip] = n
	return n
}

// knownDevice says whether deviceID is one of username's devices: a login
// naming it is the owner's returning device and skips the per-username rate
// (so guessers spread over many addresses cannot lock the owner out).
func (g *Gateway) knownDevice(ctx context.Context, username, deviceID string) bool {
	if deviceID == "" {
		return false
	}
	ok, err := g.svc.DeviceOf(ctx, username, deviceID)
	return err == nil && ok
}

// clientIP is the client's address: the peer, or, when the peer is one of
// the trusted proxies, the rightmost X-Forwarded-For entry that is not a
// trusted proxy itself.
func (g *Gateway) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(g.cfg.TrustedProxies) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !g.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a forged or broken header: fall back to the proxy
		}
		a = a.Unmap()
		if !g.trusted(a) {
			return a.String()
		}
	}
	return host
}

func (g *Gateway) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
