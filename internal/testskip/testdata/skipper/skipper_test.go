// Package skipper is testskip's fixture: one test that runs, two that skip
// for the same missing thing, one for another.
package skipper

import (
	"testing"

	"github.com/parley-chat/parley/internal/testskip"
)

func TestMain(m *testing.M) { testskip.Main(m) }

func TestRuns(t *testing.T) {}

func TestNeedsDatabaseA(t *testing.T) {
	testskip.Skip(t, "PARLEY_FIXTURE_DB not set: database tests skipped")
}

func TestNeedsDatabaseB(t *testing.T) {
	testskip.Skip(t, "PARLEY_FIXTURE_DB not set: database tests skipped")
}

func TestNeedsBrowser(t *testing.T) { testskip.Skipf(t, "%s is missing", "/usr/bin/fixture-browser") }
