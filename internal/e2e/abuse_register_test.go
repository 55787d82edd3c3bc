package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
)

func register(t testing.TB, srv *servertest.Server, name, display string) (int, apiError) {
	t.Helper()
	var e apiError
	body := map[string]string{"username": name, "password": "password-" + name}
	if display != "" {
		body["display_name"] = display
	}
	st := api(t, srv, "POST", "/api/v1/auth/register", "", body, &e)
	return st, e
}

// Finding 2: 40 parallel registrations all succeeded; now an address gets
// --registration-rate per hour, and 429 past it.
func TestRegistrationRatePerAddress(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.RegistrationRate = 5 })
	var wg sync.WaitGroup
	statuses := make([]int, 40)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = register(t, srv, fmt.Sprintf("flood%d-%d", userSeq.Add(1), i), "")
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	if count[201] != 5 || count[429] != 35 {
		t.Fatalf("40 parallel registrations with a rate of 5: %v, want 5 x 201 and 35 x 429", count)
	}
	// Malformed attempts teach nothing and cost nothing.
	srv2 := servertest.Start(t, func(c *server.Config) { c.RegistrationRate = 2 })
	for i := 0; i < 5; i++ {
		if st, _ := register(t, srv2, "X!", ""); st != 422 {
			t.Fatalf("invalid name: %d, want 422", st)
		}
	}
	if st, _ := register(t, srv2, fmt.Sprintf("ok%d", userSeq.Add(1)), ""); st != 201 {
		t.Fatalf("after invalid attempts: %d, want 201", st)
	}
}

// A taken name is refused (409) before the password is hashed, and counts.
func TestRegistrationTakenNameFirst(t *testing.T) {
	srv := servertest.Start(t)
	name := fmt.Sprintf("taken%d", userSeq.Add(1))
	if st, _ := register(t, srv, name, ""); st != 201 {
		t.Fatalf("first: %d", st)
	}
	if st, e := register(t, srv, name, ""); st != 409 || e.Error.Code != "conflict" {
		t.Fatalf("again: %d %+v, want 409 conflict", st, e)
	}
}

// --registration closed refuses with 403 registration_closed.
func TestRegistrationClosed(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Registration = "closed" })
	if st, e := register(t, srv, fmt.Sprintf("late%d", userSeq.Add(1)), ""); st != http.StatusForbidden || e.Error.Code != "registration_closed" {
		t.Fatalf("closed registration: %d %+v, want 403 registration_closed", st, e)
	}
}

// Finding 12: display names, group names and device names with controls or
// bidi formatting characters are refused with 422.
func TestNamesRefuseControls(t *testing.T) {
	srv := servertest.Start(t)
	for _, bad := range []string{"\u202egpj.exe", "ali\u200bce", "bell\a", "esc\x1b[31m", "a\nb", "\u2066x\u2069"} {
		if st, _ := register(t, srv, fmt.Sprintf("name%d", userSeq.Add(1)), bad); st != 422 {
			t.Fatalf("display name %q: %d, want 422", bad, st)
		}
	}
	if st, _ := register(t, srv, fmt.Sprintf("name%d", userSeq.Add(1)), "Zoë 李 🙂"); st != 201 {
		t.Fatalf("ordinary unicode display name: %d, want 201", st)
	}
	alice, bob := newAccount(t, srv, "alice"), newAccount(t, srv, "bob")
	if st := api(t, srv, "POST", "/api/v1/groups", alice.Token, map[string]any{"name": "team\u202e", "members": []string{bob.UserID}}, nil); st != 422 {
		t.Fatalf("group name with U+202E: %d, want 422", st)
	}
	conv := group(t, srv, alice, "team", bob)
	if st := api(t, srv, "PATCH", "/api/v1/groups/"+conv, alice.Token, map[string]any{"name": "x\x00y"}, nil); st != 422 {
		t.Fatalf("rename with NUL: %d, want 422", st)
	}
	if st := api(t, srv, "POST", "/api/v1/auth/login", "", map[string]string{"username": alice.Username, "password": "password-" + alice.Username, "device_name": "phone\u202e"}, nil); st != 422 {
		t.Fatalf("device name with U+202E: %d, want 422", st)
	}
}

// Finding 11: a body trickled byte by byte is not waited for forever: the
// server stops reading it (jsonBodyTimeout, 10 s) and answers or hangs up.
func TestTrickledBodyIsCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("takes the 10 s body timeout")
	}
	srv := servertest.Start(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"username":"slowpoke","password":"password-slowpoke"}`
	fmt.Fprintf(conn, "POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if n > 0 {
			err = nil
		}
		done <- err
	}()
	// One byte a second: the whole body would take 55 s.
	for i := 0; i < len(body); i++ {
		select {
		case <-done:
			if i >= len(body)-1 {
				t.Fatal("the server waited for the whole trickled body")
			}
			return // cut off (answered or closed) before the body was complete
		case <-time.After(time.Second):
		}
		if _, err := conn.Write([]byte{body[i]}); err != nil {
			return // the server hung up
		}
	}
	t.Fatal("the server waited for the whole trickled body (55 s)")
}

// Finding 12: file names lose control and bidi formatting characters.
func TestFileNamesAreCleaned(t *testing.T) {
	srv := servertest.Start(t)
	alice := newAccount(t, srv, "alice")
	m := uploadNamed(t, srv, alice.Token, []byte("just some text"), "\u202egpj.exe")
	if m.Name != "gpj.exe" {
		t.Fatalf("file name %q, want %q (U+202E removed)", m.Name, "gpj.exe")
	}
	m = uploadNamed(t, srv, alice.Token, []byte("more text"), "re\x1b[2Jport\u0085\u200b.txt")
	if m.Name != "re[2Jport.txt" {
		t.Fatalf("file name %q, want %q", m.Name, "re[2Jport.txt")
	}
}
