package e2e

import (
	"testing"

	"github.com/parley-chat/parley/internal/testskip"
)

// TestMain lists the tests skipped for want of PARLEY_TEST_POSTGRES, a
// mountable tmpfs or the go command in go test's default output.
func TestMain(m *testing.M) { testskip.Main(m) }
