package push

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// sender delivers one notification to one subscription on its platform.
type sender interface {
	send(ctx context.Context, sub *chat.PushSubscription, n *Notification) result
}

// verdict is what a send attempt means for its job.
type verdict int

const (
	vSent   verdict = iota // accepted: the job is done
	vRetry                 // 429, 5xx, a network failure: try again later
	vGone                  // the subscription no longer exists: delete it
	vFailed                // refused for good: drop the job
)

// result is a send attempt's outcome.
type result struct {
	verdict    verdict
	retryAfter time.Duration // the service's Retry-After, if any
	status     int           // HTTP status (0: no answer)
	reason     string        // the service's error code, or the transport error
}

func (r result) label() string {
	return [...]string{vSent: OutcomeSent, vRetry: OutcomeRetry, vGone: OutcomeGone, vFailed: OutcomeFailed}[r.verdict]
}

// networkFailure is a request that got no answer: retried, unless the
// sender is shutting down (then the job stays leased for the next start).
func networkFailure(err error) result {
	return result{verdict: vRetry, reason: err.Error()}
}

// byStatus is the common reading of a push service's answer: 2xx sent,
// 404/410 gone, 429/5xx retried (with Retry-After), anything else dropped.
func byStatus(resp *http.Response, now time.Time) result {
	r := result{status: resp.StatusCode, reason: resp.Status}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		r.verdict = vSent
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		r.verdict = vGone
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		r.verdict = vRetry
		r.retryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	default:
		r.verdict = vFailed
	}
	return r
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// drain reads what is left of a body (at most 64 KiB) so the connection
// can be reused, and closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

// clients are the HTTP clients of the senders.
type clients struct {
	endpoints *http.Client // Web Push and UnifiedPush: URLs the subscribers chose, guarded
	services  *http.Client // FCM and its token exchange: URLs from the configuration
	apns      *http.Client // APNs: HTTP/2 only
}

// newClients builds the clients: TLS with the system roots (or roots, in
// tests) plus cfg.CAFile, keep-alive pools sized for the workers, no
// redirects, and for subscriber-chosen endpoints a dialer that refuses
// loopback (unless allowed), link-local and unspecified addresses, so that
// a subscription cannot aim the server at its own network.
func newClients(cfg Config, roots *x509.CertPool) (clients, error) {
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
	} else {
		roots = roots.Clone()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return clients{}, fmt.Errorf("push: --push-ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return clients{}, fmt.Errorf("push: --push-ca-file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	transport := func(guard bool, h2only bool) *http.Transport {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		if guard {
			d.Control = func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil || !allowedAddr(ap.Addr(), cfg.AllowLoopback) {
					return fmt.Errorf("push: refusing to connect to %s", address)
				}
				return nil
			}
		}
		t := &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          4 * cfg.Workers,
			MaxIdleConnsPerHost:   cfg.Workers,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		}
		if guard {
			t.Proxy = nil // the guard must see the real destination
		}
		if h2only {
			t.Protocols = new(http.Protocols)
			t.Protocols.SetHTTP2(true)
		}
		return t
	}
	client := func(t *http.Transport) *http.Client {
		return &http.Client{Transport: t, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return clients{
		endpoints: client(transport(true, false)),
		services:  client(transport(false, false)),
		apns:      client(transport(false, true)),
	}, nil
}
