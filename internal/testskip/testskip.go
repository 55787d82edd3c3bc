// Package testskip makes the tests that skip for want of something on the
// machine (a database URL, a browser, ffmpeg) visible in `go test ./...`'s
// default output.
//
// Without -v, go test shows nothing of a passing package but its "ok" line,
// so a package whose every test skipped looks exactly like one that ran. A
// package that calls Main from its TestMain, and Skip instead of t.Skip,
// prints one line per skip reason ("SKIP ./internal/store/postgres: 12 tests:
// PARLEY_TEST_POSTGRES not set ...") where go test's own output goes, and is
// never cached while it skips, so the line comes back on every run.
package testskip

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// skipped is the package under test's record: like the testing package's own
// state, one per test binary.
var skipped = struct {
	sync.Mutex
	byReason map[string][]string // reason → test names
}{byReason: map[string][]string{}}

// Skip records why t is skipped and skips it. Use it for what the machine
// lacks, not for -short.
func Skip(t testing.TB, reason string) {
	t.Helper()
	skipped.Lock()
	skipped.byReason[reason] = append(skipped.byReason[reason], t.Name())
	skipped.Unlock()
	markUncacheable()
	t.Skip(reason)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, args...))
}

// Main runs the tests, then reports what Skip skipped, and exits.
func Main(m *testing.M) {
	code := m.Run()
	if lines := Summary(packageDir()); len(lines) > 0 {
		w, closeW := output()
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		closeW()
	}
	os.Exit(code)
}

// Summary is one line per skip reason, for the package at dir.
func Summary(dir string) []string {
	skipped.Lock()
	defer skipped.Unlock()
	reasons := make([]string, 0, len(skipped.byReason))
	for r := range skipped.byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	lines := make([]string, 0, len(reasons))
	for _, r := range reasons {
		names := skipped.byReason[r]
		what := names[0]
		if len(names) > 1 {
			what = fmt.Sprintf("%d tests", len(names))
		}
		lines = append(lines, fmt.Sprintf("SKIP %s: %s: %s", dir, what, r))
	}
	return lines
}

// packageDir is the package's directory relative to the module root
// ("./internal/store/postgres"): go test runs a test binary in it.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	root, ok := moduleRoot()
	if !ok {
		return wd
	}
	rel, err := filepath.Rel(root, wd)
	if err != nil {
		return wd
	}
	return "./" + filepath.ToSlash(rel)
}

// moduleRoot is the nearest directory at or above the working directory
// with a go.mod.
func moduleRoot() (string, bool) {
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// output is where the summary goes. With -v (and -json) the test's own
// output is shown: there. Otherwise go test swallows a passing package's
// output, so the lines go to go test's own standard output when the parent
// process is `go test` (Linux: /proc), and to ours when it is not.
func output() (io.Writer, func()) {
	if testing.Verbose() {
		return os.Stdout, func() {}
	}
	ppid := os.Getppid()
	args, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
	if err != nil || !isGoTest(bytes.Split(bytes.TrimRight(args, "\x00"), []byte{0})) {
		return os.Stdout, func() {}
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/1", ppid), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return os.Stdout, func() {}
	}
	return f, func() { _ = f.Close() }
}

// isGoTest reports whether argv is `go test ...` writing plain text.
func isGoTest(argv [][]byte) bool {
	if len(argv) < 2 || filepath.Base(string(argv[0])) != "go" || string(argv[1]) != "test" {
		return false
	}
	for _, a := range argv[2:] {
		if s := string(a); s == "-json" || s == "--json" || strings.HasPrefix(s, "-json=") {
			return false
		}
	}
	return true
}

// markUncacheable keeps go test from caching this run, so that the next run
// prints its SKIP lines again instead of a bare "(cached)": go test caches a
// result only when every file of the module the test opened is older than two
// seconds (cmd/go's modTimeCutoff). The stamp is written under the module's
// .testskip/ (ignored by git); a read-only tree just keeps the cache.
func markUncacheable() {
	root, ok := moduleRoot()
	if !ok {
		return
	}
	dir := filepath.Join(root, ".testskip")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	name := filepath.Join(dir, filepath.Base(os.Args[0])+".stamp")
	if err := os.WriteFile(name, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return
	}
	if f, err := os.Open(name); err == nil {
		_ = f.Close()
	}
}
