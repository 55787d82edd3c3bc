package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// fuzzTarget is one REST endpoint the body fuzzer aims at. Paths may hold
// {conv} and {group}, replaced with real ids.
type fuzzTarget struct {
	method, path string
}

var fuzzTargets = []fuzzTarget{
	{"POST", "/api/v1/auth/register"},
	{"POST", "/api/v1/auth/login"},
	{"POST", "/api/v1/conversations"},
	{"POST", "/api/v1/groups"},
	{"POST", "/api/v1/groups/{group}/members"},
	{"PATCH", "/api/v1/groups/{group}"},
	{"PUT", "/api/v1/keys"},
	{"GET", "/api/v1/conversations/{conv}/messages?"},
	{"GET", "/api/v1/users?username="},
}

type fuzzEnv struct {
	srv         *servertest.Server
	token       string
	conv, group string
}

// FuzzREST sends arbitrary bodies and query strings to the REST API. Whatever
// arrives, the answer is never a 500, never a success for garbage that is not
// JSON, and every error carries the protocol's error body.
func FuzzREST(f *testing.F) {
	seeds := []string{
		`{"username":"fuzzer","password":"password1"}`, `{"type":"direct","user_id":"x"}`,
		`{"name":"g","members":[]}`, `{"user_ids":["a"]}`, `{"name":"renamed"}`,
		`{"identity_key":"AAAA","signing_key":"AAAA","signed_prekey":{"key_id":1,"public_key":"AA","signature":"AA"}}`,
		`before=5&limit=10`, `after=0&limit=999999999999999999999`, `{"a":[[[[[[[[[[]]]]]]]]]]}`, `null`, `[]`, "\xff\xfe", ``,
	}
	for i := range fuzzTargets {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, target uint8, body []byte) {
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		path := strings.NewReplacer("{conv}", e.conv, "{group}", e.group).Replace(tg.path)
		var rd io.Reader = bytes.NewReader(body)
		if strings.HasSuffix(path, "?") || strings.HasSuffix(path, "=") {
			path += urlSafe(body)
			rd = nil
		}
		req, err := http.NewRequest(tg.method, e.srv.URL+path, rd)
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tg.method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: status %d %s", tg.method, path, body, resp.StatusCode, raw)
		}
		if resp.StatusCode >= 400 {
			var eb apiError
			if json.Unmarshal(raw, &eb) != nil || eb.Error.Status != resp.StatusCode || eb.Error.Code == "" {
				t.Fatalf("%s %s: status %d without the error body: %q", tg.method, path, resp.StatusCode, raw)
			}
		} else if tg.method != "GET" && !json.Valid(body) {
			t.Fatalf("%s %s accepted a body that is not JSON: %q -> %d", tg.method, path, body, resp.StatusCode)
		}
	})
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	srv := servertest.Start(f)
	alice, bob := newAccount(f, srv, "fuzza"), newAccount(f, srv, "fuzzb")
	return &fuzzEnv{srv: srv, token: alice.Token, conv: direct(f, srv, alice, bob), group: group(f, srv, alice, "fuzz", bob)}
}

// urlSafe keeps the printable ASCII of b, so the fuzzer explores query syntax.
func urlSafe(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c > ' ' && c < 0x7f && c != '#' {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
