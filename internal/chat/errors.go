package chat

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every layer wraps them with %w; the gateway maps them to
// protocol status codes in exactly one place.
var (
	ErrBadRequest   = errors.New("bad request")            // 400
	ErrUnauthorized = errors.New("unauthorized")           // 401
	ErrForbidden    = errors.New("forbidden")              // 403
	ErrNotFound     = errors.New("not found")              // 404
	ErrConflict     = errors.New("conflict")               // 409
	ErrTooLarge     = errors.New("too large")              // 413
	ErrInvalid      = errors.New("invalid request")        // 422
	ErrRateLimited  = errors.New("rate limited")           // 429
	ErrExpired      = errors.New("session expired")        // 440
	ErrUnavailable  = errors.New("dependency unavailable") // 503
)

// Refinements of the sentinels above, with their own protocol error codes.
var (
	ErrBlocked            = fmt.Errorf("%w: blocked", ErrForbidden)             // 403 "blocked"
	ErrRegistrationClosed = fmt.Errorf("%w: registration closed", ErrForbidden) // 403 "registration_closed"
	ErrSuspended          = fmt.Errorf("%w: account suspended", ErrForbidden)   // 403 "suspended"
	ErrQuotaExceeded      = fmt.Errorf("%w: quota exceeded", ErrTooLarge)       // 413 "quota_exceeded"
)

// sentinels lists the errors above, for IsDomainError.
var sentinels = []error{
	ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict,
	ErrTooLarge, ErrInvalid, ErrRateLimited, ErrExpired, ErrUnavailable,
}

// IsDomainError reports whether err already carries one of the sentinels
// (adapters pass such errors through instead of mapping them again).
func IsDomainError(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// RateLimitError is ErrRateLimited with the time after which a retry may pass.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limited: retry after %s", e.RetryAfter.Round(time.Millisecond))
}

// Unwrap makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// errf wraps a sentinel with a human message: errf(ErrInvalid, "group too large").
func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
