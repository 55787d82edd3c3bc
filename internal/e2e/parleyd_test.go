package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server/servertest"
	"github.com/parley-chat/parley/internal/store/sqlite"
	"github.com/parley-chat/parley/internal/testskip"
)

// The helpers in this file run parleyd as a real subprocess, for tests that
// need what an in-process node cannot give: a kill -9 of the whole server.

// buildParleyd compiles cmd/parleyd into a fresh temporary directory and
// returns the binary's path. The server is built without -race by default:
// a crash test wants the server's real speed, so that the kill lands on a
// deep commit pipeline, and the in-process tests already run the same code
// under the race detector. PARLEY_CRASH_RACE=1 builds it with -race (a data
// race then shows in its log, which parleydProc.kill reports).
func buildParleyd(t *testing.T) string {
	t.Helper()
	goCmd := goTool(t)
	bin := filepath.Join(t.TempDir(), "parleyd")
	args := []string{"build", "-o", bin}
	race := os.Getenv("PARLEY_CRASH_RACE") == "1"
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/parley-chat/parley/cmd/parleyd")
	start := time.Now()
	cmd := exec.Command(goCmd, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built parleyd (race=%v) in %v", race, time.Since(start).Round(time.Millisecond))
	return bin
}

// goTool finds the go command: `go env GOROOT`/bin/go of the go on PATH (the
// toolchain it selects), else that go itself.
func goTool(t *testing.T) string {
	t.Helper()
	onPath, err := exec.LookPath("go")
	if err != nil {
		testskip.Skipf(t, "no go command on PATH to build parleyd: %v", err)
	}
	out, err := exec.Command(onPath, "env", "GOROOT").Output()
	if err == nil {
		cand := filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
		if fi, err := os.Stat(cand); err == nil && !fi.IsDir() {
			return cand
		}
	}
	return onPath
}

// parleydProc is one parleyd subprocess on a data directory, restartable.
type parleydProc struct {
	t       *testing.T
	bin     string
	dataDir string
	logDir  string
	extra   []string // more flags for the next start

	srv     *servertest.Server // URL and WSURL of the running process, for api and dial
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returned
	waitErr error         // valid after exited
	logPath string
	starts  int

	// afterKill, if set, runs right after the SIGKILL is sent, before
	// waiting for the process to go: the power-loss tests cut the power
	// there (a process stuck in the filesystem dies only after that).
	afterKill func()
	// afterFirstAck, if set, runs in runCrashStream once the stream has its
	// first ack (the power-loss test arms its freezes there, so a frozen
	// commit or checkpoint can never keep the stream from starting).
	afterFirstAck func()
}

// newParleydProc prepares (does not start) a parleyd on a fresh data dir.
// The process is killed when the test ends; if the test failed, the tail
// of its last log is printed.
func newParleydProc(t *testing.T, bin string) *parleydProc {
	p := &parleydProc{t: t, bin: bin, dataDir: t.TempDir(), logDir: t.TempDir()}
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if tail := p.logTail(4000); t.Failed() && p.logPath != "" && tail != "" {
			t.Logf("tail of %s:\n%s", filepath.Base(p.logPath), tail)
		}
	})
	return p
}

func (p *parleydProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start runs parleyd on a free port of 127.0.0.1 and waits for /readyz.
func (p *parleydProc) start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatal("parleyd is already running")
	}
	const attempts = 3 // the free port may be taken between probe and bind
	for attempt := 1; ; attempt++ {
		addr := freeAddr(p.t)
		err := p.launch(addr)
		if err == nil {
			return
		}
		if attempt == attempts || !strings.Contains(p.logTail(2000), "address already in use") {
			p.t.Fatalf("parleyd (start %d) did not become ready: %v\n%s", p.starts, err, p.logTail(4000))
		}
		p.t.Logf("parleyd could not bind %s, retrying on another port", addr)
	}
}

// restart starts parleyd again on the address of its previous run, as a
// node coming back under the name its clients and load balancer know. The
// port was just freed by the kill, so a bind failure is retried briefly.
func (p *parleydProc) restart() {
	p.t.Helper()
	if p.running() || p.srv == nil {
		p.t.Fatal("restart: parleyd is running or never ran")
	}
	addr := strings.TrimPrefix(p.srv.URL, "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.launch(addr)
		if err == nil {
			return
		}
		if time.Now().After(deadline) || !strings.Contains(p.logTail(2000), "address already in use") {
			p.t.Fatalf("parleyd (start %d) did not become ready on %s: %v\n%s", p.starts, addr, err, p.logTail(4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *parleydProc) launch(addr string) error {
	p.spawn(addr)
	return p.waitReady()
}

// spawn starts the process on addr without waiting for it to be ready.
func (p *parleydProc) spawn(addr string) {
	p.starts++
	p.logPath = filepath.Join(p.logDir, fmt.Sprintf("parleyd-%d.log", p.starts))
	logFile, err := os.Create(p.logPath)
	if err != nil {
		p.t.Fatal(err)
	}
	args := append([]string{
		"--addr", addr,
		"--data-dir", p.dataDir,
		"--bcrypt-cost", "4",
		"--message-rate", "0",
		"--frame-rate", "0", // the crash tests pipeline on purpose
		"--log-level", "warn",
	}, p.extra...)
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		p.t.Fatalf("starting parleyd: %v", err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	p.srv = &servertest.Server{URL: "http://" + addr, WSURL: "ws://" + addr + "/api/v1/ws"}
}

// waitReady waits up to 30s for the spawned process's /readyz.
func (p *parleydProc) waitReady() error {
	cmd := p.cmd
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("parleyd exited before it was ready: %v", p.waitErr)
		default:
		}
		if resp, err := client.Get(p.srv.URL + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-p.exited
			return fmt.Errorf("/readyz not 200 within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL (kill -9) and waits until the process is gone.
func (p *parleydProc) kill() {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("parleyd died before the kill: %v\n%s", p.waitErr, p.logTail(4000))
	}
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("kill -9 parleyd: %v", err)
	}
	if p.afterKill != nil {
		p.afterKill()
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatal("parleyd still running 10s after SIGKILL")
	}
	p.checkLog()
}

// checkLog fails the test if the last run's log shows a data race or a
// panic (a crashed goroutine, or one recovered by net/http).
func (p *parleydProc) checkLog() {
	p.t.Helper()
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "panic serving", "fatal error: "} {
		if i := bytes.Index(raw, []byte(bad)); i >= 0 {
			end := min(len(raw), i+6000)
			p.t.Errorf("parleyd (start %d) log shows %q:\n%s", p.starts, bad, raw[i:end])
		}
	}
}

func (p *parleydProc) logTail(n int) string {
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	return string(raw)
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// checkStoreIntegrity runs the store's integrity check (PRAGMA
// integrity_check and foreign_key_check) on the parley.db of a stopped
// server. It works on a copy of the database and its WAL: opening the
// original would recover and checkpoint the WAL, and the restarted server
// must find the files exactly as the crash left them.
func checkStoreIntegrity(t *testing.T, dataDir string) {
	t.Helper()
	dir := copyStore(t, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "parley.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("opening the crashed parley.db with its WAL: %v", err)
	}
	defer st.Close()
	if err := st.IntegrityCheck(ctx); err != nil {
		t.Errorf("parley.db after kill -9: %v", err)
	}
}

// copyStore copies the parley.db of a stopped server, with its WAL, to a
// fresh directory and returns it: opening the original would recover and
// checkpoint the WAL, and a restarted server must find the files exactly as
// the crash left them.
func copyStore(t *testing.T, dataDir string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"parley.db", "parley.db-wal"} {
		raw, err := os.ReadFile(filepath.Join(dataDir, name))
		if os.IsNotExist(err) && name != "parley.db" {
			continue
		}
		if err != nil {
			t.Fatalf("copying %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
