package web_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server"
	"github.com/parley-chat/parley/internal/server/servertest"
	"github.com/parley-chat/parley/internal/testskip"
)

// The browser tests drive the real web client in Debian's Chromium through
// playwright-core (web/e2e). Each scenario gets its own server.
//
// Prerequisites (the tests skip, naming the missing piece, without them):
//
//	apt-get install -y chromium nodejs npm
//	npm ci --prefix web/e2e
const chromiumPath = "/usr/bin/chromium"

const scriptTimeout = 4 * time.Minute

// requireBrowser skips the test unless Chromium, node and playwright-core are
// installed. With PARLEY_REQUIRE_BROWSER set (CI sets it), a missing piece
// fails the test instead: there the browser tests must run.
func requireBrowser(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests skipped in -short mode")
	}
	missing := func(args ...any) { testskip.Skip(t, fmt.Sprint(args...)) }
	if os.Getenv("PARLEY_REQUIRE_BROWSER") != "" {
		missing = t.Fatal
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing(fmt.Sprintf("Chromium is missing (%s): install it with `apt-get install -y chromium`", chromiumPath))
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is missing: install it with `apt-get install -y nodejs npm`")
	}
	if _, err := os.Stat(filepath.Join("e2e", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("web/e2e/node_modules/playwright-core is missing: install it with `npm ci --prefix web/e2e`")
	}
	return node
}

// runScript runs `node web/e2e/<script>` against the server at url, streaming
// its output into the test log, and fails on a non-zero exit.
func runScript(t *testing.T, node, script, url string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = "e2e"
	cmd.Env = append(os.Environ(), "PARLEY_URL="+url, "CHROMIUM="+chromiumPath)
	cmd.Env = append(cmd.Env, env...)
	// On timeout, interrupt first: playwright then closes the browser it launched.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), " "); line != "" && strings.TrimSpace(line) != "..." {
				t.Log(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	err := cmd.Run()
	_ = pw.Close()
	<-done
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s did not finish within %s", script, scriptTimeout)
	}
	if err != nil {
		t.Fatalf("%s failed after %s: %v", script, time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("%s passed in %s", script, time.Since(start).Round(time.Millisecond))
}

// TestClientUnits runs the unit tests of the client's pure modules in node.
func TestClientUnits(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testskip.Skip(t, "node is missing: install it with `apt-get install -y nodejs`")
	}
	runScript(t, node, "unit.mjs", "")
}

func TestBrowser(t *testing.T) {
	node := requireBrowser(t)
	for _, script := range []string{"direct.mjs", "group.mjs", "history.mjs", "media.mjs", "firstuse.mjs"} {
		t.Run(strings.TrimSuffix(script, ".mjs"), func(t *testing.T) {
			srv := servertest.Start(t)
			runScript(t, node, script, srv.URL)
		})
	}
	t.Run("push", func(t *testing.T) {
		// Notifications of one conversation 2 s apart (not 30), and the
		// script's Web Push receiver on 127.0.0.1 over plain http accepted.
		srv := servertest.Start(t, func(c *server.Config) {
			c.Push.Window = 2 * time.Second
			c.Push.AllowLoopback = true
		})
		runScript(t, node, "push.mjs", srv.URL)
	})
	t.Run("failures", func(t *testing.T) {
		// 5 messages a minute: the sixth in a burst gets 429 with retry_after ≈ 12 s.
		srv := servertest.Start(t, func(c *server.Config) { c.MessageRate = 5 })
		runScript(t, node, "failures.mjs", srv.URL)
	})
}

// TestScreenshots regenerates docs/screenshots/*.png:
//
//	PARLEY_SCREENSHOTS=1 go test ./web -run TestScreenshots -v
func TestScreenshots(t *testing.T) {
	if os.Getenv("PARLEY_SCREENSHOTS") == "" {
		t.Skip("set PARLEY_SCREENSHOTS=1 to regenerate docs/screenshots/")
	}
	node := requireBrowser(t)
	srv := servertest.Start(t)
	dir, err := filepath.Abs(filepath.Join("..", "docs", "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	runScript(t, node, "screenshots.mjs", srv.URL, "PARLEY_SCREENSHOTS_DIR="+dir)
}
