package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. An *APIError matches the sentinel of its status with
// errors.Is, so errors.Is(err, client.ErrRateLimited) holds for a 429 whether
// it came from REST or from a WebSocket error frame.
var (
	ErrBadRequest     = errors.New("parley: bad request")         // 400
	ErrUnauthorized   = errors.New("parley: unauthorized")        // 401
	ErrForbidden      = errors.New("parley: forbidden")           // 403
	ErrNotFound       = errors.New("parley: not found")           // 404
	ErrConflict       = errors.New("parley: conflict")            // 409
	ErrTooLarge       = errors.New("parley: too large")           // 413
	ErrInvalid        = errors.New("parley: invalid request")     // 422
	ErrRateLimited    = errors.New("parley: rate limited")        // 429
	ErrSessionExpired = errors.New("parley: session expired")     // 440 (and 401 on the socket)
	ErrServerFault    = errors.New("parley: server fault")        // 500
	ErrUnavailable    = errors.New("parley: service unavailable") // 503

	// ErrClosed is returned by calls that need the connection once Run has returned.
	ErrClosed = errors.New("parley: client closed")
	// ErrNotConnected is returned by Typing while no connection is up.
	ErrNotConnected = errors.New("parley: not connected")
	// ErrAlreadyRunning is returned by a second call of Run.
	ErrAlreadyRunning = errors.New("parley: Run called twice")
)

var statusSentinels = map[int]error{
	400: ErrBadRequest,
	401: ErrUnauthorized,
	403: ErrForbidden,
	404: ErrNotFound,
	409: ErrConflict,
	413: ErrTooLarge,
	422: ErrInvalid,
	429: ErrRateLimited,
	440: ErrSessionExpired,
	500: ErrServerFault,
	503: ErrUnavailable,
}

// APIError is an error answered by the server, over HTTP (status code and
// {"error":{...}} body) or over the WebSocket (an error frame).
type APIError struct {
	Status  int    // HTTP-like status: 400, 401, 403, 404, 409, 413, 422, 429, 440, 500, 503
	Code    string // machine-readable code, e.g. "rate_limited"
	Message string // human-readable message
	// Ref is the message_id of the frame an error frame answers, if any.
	Ref string
	// RetryAfter is how long to wait before retrying (429 and 503), from the
	// Retry-After header or the frame's retry_after.
	RetryAfter time.Duration
	// Body is the raw error body or frame, for fields this type does not know
	// (such as missing_devices of an e2ee 409).
	Body json.RawMessage
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("parley: ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) and the like hold for the matching status.
func (e *APIError) Is(target error) bool {
	s, ok := statusSentinels[e.Status]
	return ok && s == target
}

// Temporary reports whether repeating the request later may succeed (429, 500, 503).
func (e *APIError) Temporary() bool {
	return e.Status == 429 || e.Status == 500 || e.Status == 503 || e.Status == 502 || e.Status == 504
}

// StatusOf returns the status of the *APIError in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// IsRateLimited reports a 429.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// IsNotFound reports a 404.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsForbidden reports a 403.
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// IsConflict reports a 409.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsUnauthorized reports a 401.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsSessionExpired reports that the session ended: a 440 error, or the error
// Run returns after a 401 or close code 4440.
func IsSessionExpired(err error) bool { return errors.Is(err, ErrSessionExpired) }

// IsRetryable reports whether the server asked for a retry (429, 500, 503).
func IsRetryable(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Temporary()
}

// errorBody is the HTTP error envelope and also, flattened, an error frame.
type errorBody struct {
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Ref        string `json:"ref"`
	RetryAfter int64  `json:"retry_after"` // ms (frames only)
}

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// decodeHTTPError builds an *APIError from a non-2xx response. It reads (a
// bounded part of) the body but does not close it.
func decodeHTTPError(resp *http.Response) *APIError {
	var raw []byte
	if resp.Body != nil {
		raw, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	}
	return newHTTPError(resp.StatusCode, resp.Header, raw)
}

func newHTTPError(status int, h http.Header, raw []byte) *APIError {
	e := &APIError{Status: status}
	if len(raw) > 0 {
		var env struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(raw, &env) == nil {
			var eb errorBody
			if len(env.Error) > 0 && json.Unmarshal(env.Error, &eb) == nil {
				e.Code, e.Message, e.Ref = eb.Code, eb.Message, eb.Ref
				if eb.RetryAfter > 0 {
					e.RetryAfter = time.Duration(eb.RetryAfter) * time.Millisecond
				}
			} else if len(env.Error) > 0 {
				var s string
				if json.Unmarshal(env.Error, &s) == nil {
					e.Message = s
				}
			}
			e.Body = json.RawMessage(raw)
		} else {
			e.Message = strings.TrimSpace(string(raw))
			if len(e.Message) > 200 {
				e.Message = e.Message[:200] + "…"
			}
		}
	}
	if e.Code == "" {
		e.Code = defaultCode(status)
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(status))
	}
	if ra := parseRetryAfter(h.Get("Retry-After"), time.Now()); ra > 0 {
		e.RetryAfter = ra
	}
	return e
}

// decodeErrorFrame builds an *APIError from an error frame. The fields are
// read from the frame itself, or from a nested "error" object if present.
func decodeErrorFrame(raw []byte) *APIError {
	var f struct {
		errorBody
		Error json.RawMessage `json:"error"`
	}
	_ = json.Unmarshal(raw, &f)
	eb := f.errorBody
	if len(f.Error) > 0 && f.Error[0] == '{' {
		var nested errorBody
		if json.Unmarshal(f.Error, &nested) == nil {
			if eb.Status == 0 {
				eb.Status = nested.Status
			}
			if eb.Code == "" {
				eb.Code = nested.Code
			}
			if eb.Message == "" {
				eb.Message = nested.Message
			}
			if eb.Ref == "" {
				eb.Ref = nested.Ref
			}
			if eb.RetryAfter == 0 {
				eb.RetryAfter = nested.RetryAfter
			}
		}
	}
	e := &APIError{
		Status:  eb.Status,
		Code:    eb.Code,
		Message: eb.Message,
		Ref:     eb.Ref,
		Body:    append(json.RawMessage(nil), raw...),
	}
	if eb.RetryAfter > 0 {
		e.RetryAfter = time.Duration(eb.RetryAfter) * time.Millisecond
	}
	if e.Status == 0 {
		e.Status = 500
	}
	if e.Code == "" {
		e.Code = defaultCode(e.Status)
	}
	return e
}

func defaultCode(status int) string {
	switch status {
	case 440:
		return "session_expired"
	case 422:
		return "unprocessable"
	}
	t := http.StatusText(status)
	if t == "" {
		return "error"
	}
	return strings.ReplaceAll(strings.ToLower(t), " ", "_")
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
