package push

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// Limits on what a subscription may name.
const (
	maxEndpointLen = 2048
	maxTokenLen    = 4096
)

// Subscribe binds a subscription to the caller's device: 400 for a missing
// field or bad base64, 422 for a platform this server does not offer or an
// endpoint, key or token that cannot be right.
func (s *Service) Subscribe(ctx context.Context, sess chat.Session, req proto.PushSubscribeRequest) (chat.PushSubscription, error) {
	sub := chat.PushSubscription{UserID: sess.UserID, DeviceID: sess.DeviceID, Platform: req.Platform}
	switch req.Platform {
	case "":
		return sub, fmt.Errorf("%w: platform is required (webpush, apns, fcm or unifiedpush)", chat.ErrBadRequest)
	case chat.PlatformWebPush, chat.PlatformUnifiedPush:
		if req.Endpoint == "" {
			return sub, fmt.Errorf("%w: endpoint is required for %s", chat.ErrBadRequest, req.Platform)
		}
		if req.Keys == nil && req.Platform == chat.PlatformWebPush {
			return sub, fmt.Errorf("%w: keys.p256dh and keys.auth are required for webpush", chat.ErrBadRequest)
		}
		if err := s.checkEndpoint(req.Endpoint); err != nil {
			return sub, err
		}
		if err := s.checkResolved(ctx, req.Endpoint); err != nil {
			return sub, err
		}
		sub.Endpoint = req.Endpoint
		if req.Keys != nil {
			var err error
			if sub.P256dh, sub.Auth, err = decodeKeys(*req.Keys); err != nil {
				return sub, err
			}
		}
	case chat.PlatformAPNs, chat.PlatformFCM:
		if s.senders[req.Platform] == nil {
			name := map[string]string{chat.PlatformAPNs: "APNs", chat.PlatformFCM: "FCM"}[req.Platform]
			return sub, fmt.Errorf("%w: %s is not configured on this server; it offers %s", chat.ErrInvalid, name, strings.Join(s.Platforms(), ", "))
		}
		if req.Token == "" {
			return sub, fmt.Errorf("%w: token is required for %s", chat.ErrBadRequest, req.Platform)
		}
		if err := checkToken(req.Platform, req.Token); err != nil {
			return sub, err
		}
		sub.Endpoint = req.Token
	default:
		return sub, fmt.Errorf("%w: unknown platform %q; this server offers %s", chat.ErrInvalid, req.Platform, strings.Join(s.Platforms(), ", "))
	}
	now := s.now()
	sub.ID, sub.CreatedAt = s.ids.New(now), now.UnixMilli()
	return s.store.SavePushSubscription(ctx, sub, s.cfg.MaxPerDevice)
}

// Unsubscribe deletes one of the caller's subscriptions: 404 if it has none
// with that id.
func (s *Service) Unsubscribe(ctx context.Context, sess chat.Session, id string) error {
	err := s.store.DeletePushSubscription(ctx, sess.UserID, id)
	if errors.Is(err, chat.ErrNotFound) {
		return fmt.Errorf("%w: no push subscription %q", chat.ErrNotFound, id)
	}
	return err
}

// decodeKeys reads the RFC 8291 keys: base64url (or standard) without or
// with padding; p256dh must be a point of P-256, auth 16 bytes.
func decodeKeys(k proto.PushKeys) (p256dh, auth []byte, err error) {
	if k.P256dh == "" || k.Auth == "" {
		return nil, nil, fmt.Errorf("%w: keys.p256dh and keys.auth are both required", chat.ErrBadRequest)
	}
	if p256dh, err = decodeB64(k.P256dh); err != nil {
		return nil, nil, fmt.Errorf("%w: keys.p256dh is not base64url", chat.ErrBadRequest)
	}
	if auth, err = decodeB64(k.Auth); err != nil {
		return nil, nil, fmt.Errorf("%w: keys.auth is not base64url", chat.ErrBadRequest)
	}
	if _, err := ecdh.P256().NewPublicKey(p256dh); err != nil || len(p256dh) != 65 {
		return nil, nil, fmt.Errorf("%w: keys.p256dh must be an uncompressed P-256 point (65 bytes)", chat.ErrInvalid)
	}
	if len(auth) != 16 {
		return nil, nil, fmt.Errorf("%w: keys.auth must be 16 bytes, not %d", chat.ErrInvalid, len(auth))
	}
	return p256dh, auth, nil
}

func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// checkEndpoint accepts an https URL on a public host. Loopback hosts (and
// plain http to them) pass only with AllowLoopback; link-local and
// unspecified addresses never do. The dialer checks resolved addresses the
// same way, so a name cannot smuggle them in.
func (s *Service) checkEndpoint(raw string) error {
	invalid := func(why string) error { return fmt.Errorf("%w: endpoint %s", chat.ErrInvalid, why) }
	if len(raw) > maxEndpointLen {
		return invalid(fmt.Sprintf("is longer than %d bytes", maxEndpointLen))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" {
		return invalid("must be an absolute https URL without credentials or fragment")
	}
	host := u.Hostname()
	if !hostAllowed(host, s.cfg.AllowedHosts) {
		return invalid("host is not one of the push services this server allows (--push-allowed-hosts)")
	}
	loopback := strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost")
	if ip, err := netip.ParseAddr(host); err == nil {
		if !allowedAddr(ip, s.cfg.AllowLoopback) {
			return invalid("must point at a public address, not a loopback, private, link-local, CGNAT, benchmarking, NAT64 or other special-purpose one")
		}
		loopback = ip.Unmap().IsLoopback()
	} else if loopback && !s.cfg.AllowLoopback {
		return invalid("must not point at localhost")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback && s.cfg.AllowLoopback:
	default:
		return invalid("must be an https URL")
	}
	return nil
}

// checkResolved refuses (422) an endpoint whose host name resolves to an
// address a push connection may not go to. A name that does not resolve now
// is accepted: every connection is checked again at dial time, after
// resolution, so a name cannot smuggle a private address in later either.
func (s *Service) checkResolved(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return nil // checkEndpoint refused it
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // a literal address: checkEndpoint judged it
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if !allowedAddr(a, s.cfg.AllowLoopback) {
			return fmt.Errorf("%w: endpoint %s resolves to %s, not a public address", chat.ErrInvalid, host, a)
		}
	}
	return nil
}

// hostAllowed says whether host matches one of the patterns (none: all).
func hostAllowed(host string, patterns []string) bool {
	if len(patterns) == 0 {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if p != "" && host == p {
			return true
		}
	}
	return false
}

// checkToken accepts what the services issue: APNs device tokens are hex
// (32 bytes today, longer allowed), FCM registration tokens are printable
// ASCII without spaces.
func checkToken(platform, tok string) error {
	if len(tok) > maxTokenLen {
		return fmt.Errorf("%w: token is longer than %d bytes", chat.ErrInvalid, maxTokenLen)
	}
	if platform == chat.PlatformAPNs {
		if len(tok) < 32 || len(tok)%2 != 0 || strings.Trim(strings.ToLower(tok), "0123456789abcdef") != "" {
			return fmt.Errorf("%w: an APNs device token is an even number (at least 32) of hex digits", chat.ErrInvalid)
		}
		return nil
	}
	for _, r := range tok {
		if r <= ' ' || r > '~' {
			return fmt.Errorf("%w: an FCM registration token is printable ASCII without spaces", chat.ErrInvalid)
		}
	}
	return nil
}
