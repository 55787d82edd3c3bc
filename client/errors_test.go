package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDecodeHTTPError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantCode   string
		wantMsg    string
		wantRetry  time.Duration
		wantIs     error
		retryable  bool
		wantHasRaw bool
	}{
		{
			name:       "protocol envelope",
			status:     429,
			header:     http.Header{"Retry-After": {"3"}},
			body:       `{"error":{"status":429,"code":"rate_limited","message":"slow down"}}`,
			wantCode:   "rate_limited",
			wantMsg:    "slow down",
			wantRetry:  3 * time.Second,
			wantIs:     ErrRateLimited,
			retryable:  true,
			wantHasRaw: true,
		},
		{
			name:     "not found",
			status:   404,
			body:     `{"error":{"status":404,"code":"not_found","message":"no such user"}}`,
			wantCode: "not_found",
			wantMsg:  "no such user",
			wantIs:   ErrNotFound,
		},
		{
			name:     "e2ee conflict keeps extra fields in Body",
			status:   409,
			body:     `{"error":{"status":409,"code":"stale_devices","message":"devices changed"},"missing_devices":["d1"]}`,
			wantCode: "stale_devices",
			wantMsg:  "devices changed",
			wantIs:   ErrConflict,
		},
		{
			name:      "plain text body",
			status:    503,
			header:    http.Header{"Retry-After": {"1"}},
			body:      "upstream down\n",
			wantCode:  "service_unavailable",
			wantMsg:   "upstream down",
			wantIs:    ErrUnavailable,
			retryable: true,
			wantRetry: time.Second,
		},
		{
			name:     "empty body",
			status:   403,
			wantCode: "forbidden",
			wantMsg:  "forbidden",
			wantIs:   ErrForbidden,
		},
		{
			name:     "unprocessable",
			status:   422,
			body:     `{"error":{"status":422,"code":"invalid","message":"password too short"}}`,
			wantCode: "invalid",
			wantMsg:  "password too short",
			wantIs:   ErrInvalid,
		},
		{
			name:     "error as a string",
			status:   400,
			body:     `{"error":"bad json"}`,
			wantCode: "bad_request",
			wantMsg:  "bad json",
			wantIs:   ErrBadRequest,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			resp := &http.Response{StatusCode: tc.status, Header: h, Body: io.NopCloser(strings.NewReader(tc.body))}
			e := decodeHTTPError(resp)
			if e.Status != tc.status || e.Code != tc.wantCode || e.Message != tc.wantMsg || e.RetryAfter != tc.wantRetry {
				t.Fatalf("got %+v", e)
			}
			var err error = fmt.Errorf("wrapped: %w", e)
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.wantIs)
			}
			if errors.Is(err, ErrSessionExpired) {
				t.Fatalf("matches an unrelated sentinel")
			}
			if IsRetryable(err) != tc.retryable {
				t.Fatalf("IsRetryable = %v", !tc.retryable)
			}
			if StatusOf(err) != tc.status {
				t.Fatalf("StatusOf = %d", StatusOf(err))
			}
			if tc.wantHasRaw && !json.Valid(e.Body) {
				t.Fatalf("Body %q is not the JSON body", e.Body)
			}
		})
	}
}

func TestDecodeErrorFrame(t *testing.T) {
	tests := []struct {
		frame string
		want  APIError
	}{
		{`{"type":"error","status":429,"code":"rate_limited","message":"slow","ref":"m1","retry_after":1500}`,
			APIError{Status: 429, Code: "rate_limited", Message: "slow", Ref: "m1", RetryAfter: 1500 * time.Millisecond}},
		{`{"type":"error","status":403,"code":"forbidden","message":"not a member","ref":"m2"}`,
			APIError{Status: 403, Code: "forbidden", Message: "not a member", Ref: "m2"}},
		{`{"type":"error","status":440,"message":"expired"}`,
			APIError{Status: 440, Code: "session_expired", Message: "expired"}},
		{`{"type":"error","error":{"status":413,"code":"too_large","message":"big"},"ref":"m3"}`,
			APIError{Status: 413, Code: "too_large", Message: "big", Ref: "m3"}},
		{`{"type":"error"}`, APIError{Status: 500, Code: "internal_server_error"}},
	}
	for _, tc := range tests {
		e := decodeErrorFrame([]byte(tc.frame))
		if e.Status != tc.want.Status || e.Code != tc.want.Code || e.Message != tc.want.Message ||
			e.Ref != tc.want.Ref || e.RetryAfter != tc.want.RetryAfter {
			t.Errorf("%s: got %+v", tc.frame, e)
		}
		if string(e.Body) != tc.frame {
			t.Errorf("Body = %s", e.Body)
		}
	}
	if !IsRateLimited(decodeErrorFrame([]byte(`{"status":429}`))) {
		t.Error("IsRateLimited false for a 429 frame")
	}
	if !IsSessionExpired(decodeErrorFrame([]byte(`{"status":440}`))) {
		t.Error("IsSessionExpired false for a 440 frame")
	}
}

func TestAPIErrorString(t *testing.T) {
	e := &APIError{Status: 429, Code: "rate_limited", Message: "slow down", RetryAfter: 2 * time.Second}
	if got, want := e.Error(), "parley: 429 rate_limited: slow down (retry after 2s)"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"0":                             0,
		"-3":                            0,
		"1.5":                           1500 * time.Millisecond,
		"Wed, 01 Jan 2025 00:00:10 GMT": 10 * time.Second,
		"Tue, 31 Dec 2024 00:00:10 GMT": 0,
		"soon":                          0,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
