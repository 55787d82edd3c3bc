package testskip_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// go test's default output (no -v) names each skip reason of a passing
// package, on every run (a skipping run is not cached).
func TestSkipsShownWithoutVerbose(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err) // this test runs under go test
	}
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(goCmd, "test", "./testdata/skipper")
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: go test: %v\n%s", run, err, out)
		}
		got := string(out)
		for _, want := range []string{
			"SKIP ./internal/testskip/testdata/skipper: 2 tests: PARLEY_FIXTURE_DB not set: database tests skipped\n",
			"SKIP ./internal/testskip/testdata/skipper: TestNeedsBrowser: /usr/bin/fixture-browser is missing\n",
			"ok  \tgithub.com/parley-chat/parley/internal/testskip/testdata/skipper",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("run %d: output lacks %q:\n%s", run, want, got)
			}
		}
		if strings.Contains(got, "(cached)") {
			t.Errorf("run %d: a run with skips was cached (its SKIP lines would be lost):\n%s", run, got)
		}
	}
}

// With -json the summary stays out of the JSON stream (the skips are in it).
func TestJSONStreamUntouched(t *testing.T) {
	out, err := exec.Command("go", "test", "-json", "./testdata/skipper").CombinedOutput()
	if err != nil {
		t.Fatalf("go test -json: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("not JSON: %q", line)
		}
	}
}
