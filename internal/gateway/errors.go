package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// StatusSessionExpired is the protocol's status for an expired or revoked
// session on a socket.
const StatusSessionExpired = 440

// problem is an error as the protocol shows it.
type problem struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	Envelope   *chat.EnvelopeMismatchError // 409 for an e2ee envelope
}

// classify is the one mapping from domain errors to protocol status codes.
func classify(err error) problem {
	var rl *chat.RateLimitError
	var env *chat.EnvelopeMismatchError
	p := problem{Message: err.Error()}
	switch {
	case errors.As(err, &env):
		p.Status, p.Code, p.Envelope = http.StatusConflict, "stale_devices", env
	case errors.As(err, &rl):
		p.Status, p.Code, p.RetryAfter = http.StatusTooManyRequests, "rate_limited", rl.RetryAfter
	case errors.Is(err, proto.ErrUnknownType):
		p.Status, p.Code = http.StatusBadRequest, "unknown_type"
	case errors.Is(err, proto.ErrMalformed), errors.Is(err, chat.ErrBadRequest):
		p.Status, p.Code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, chat.ErrBlocked):
		p.Status, p.Code = http.StatusForbidden, "blocked"
	case errors.Is(err, chat.ErrRegistrationClosed):
		p.Status, p.Code = http.StatusForbidden, "registration_closed"
	case errors.Is(err, chat.ErrSuspended):
		p.Status, p.Code = http.StatusForbidden, "suspended"
	case errors.Is(err, chat.ErrQuotaExceeded):
		p.Status, p.Code = http.StatusRequestEntityTooLarge, "quota_exceeded"
	case errors.Is(err, chat.ErrUnauthorized):
		p.Status, p.Code = http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, chat.ErrForbidden):
		p.Status, p.Code = http.StatusForbidden, "forbidden"
	case errors.Is(err, chat.ErrNotFound):
		p.Status, p.Code = http.StatusNotFound, "not_found"
	case errors.Is(err, chat.ErrConflict):
		p.Status, p.Code = http.StatusConflict, "conflict"
	case errors.Is(err, chat.ErrTooLarge):
		p.Status, p.Code = http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, chat.ErrInvalid):
		p.Status, p.Code = http.StatusUnprocessableEntity, "invalid"
	case errors.Is(err, chat.ErrRateLimited):
		p.Status, p.Code, p.RetryAfter = http.StatusTooManyRequests, "rate_limited", time.Second
	case errors.Is(err, chat.ErrExpired):
		p.Status, p.Code = StatusSessionExpired, "session_expired"
	case errors.Is(err, chat.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		p.Status, p.Code, p.RetryAfter = http.StatusServiceUnavailable, "unavailable", time.Second
		p.Message = "a backing service is unavailable; retry with backoff"
	default:
		p.Status, p.Code, p.Message = http.StatusInternalServerError, "internal", "internal error; retry with the same message_id"
	}
	return p
}

// logProblem logs faults that are the server's, not the client's.
func logProblem(log *slog.Logger, p problem, err error, attrs ...any) {
	if p.Status >= 500 {
		log.Error("request failed", append(attrs, "status", p.Status, "err", err)...)
	}
}

// writeError answers an HTTP request with the protocol's error body.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	if r.Context().Err() == nil { // a client that went away is no server fault
		logProblem(g.log, p, err, "method", r.Method, "path", r.URL.Path)
	}
	if p.RetryAfter > 0 {
		secs := int((p.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
	}
	writeJSON(w, p.Status, proto.ErrorBody{Error: proto.ErrorDetail{Status: p.Status, Code: p.Code, Message: p.Message}})
}

// errorFrame encodes the error frame answering a client frame.
func errorFrame(p problem, ref string) []byte {
	f := proto.Error{Type: proto.TypeError, Status: p.Status, Code: p.Code, Message: p.Message, Ref: ref}
	if p.RetryAfter > 0 {
		f.RetryAfter = max(1, p.RetryAfter.Milliseconds())
	}
	if p.Envelope != nil {
		missing, extra := append([]string{}, p.Envelope.Missing...), append([]string{}, p.Envelope.Extra...)
		f.MissingDevices, f.ExtraDevices = &missing, &extra
	}
	return proto.Encode(f)
}
