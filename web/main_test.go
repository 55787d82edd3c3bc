package web_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/testskip"
)

// TestMain lists the browser tests skipped for want of Chromium, node or
// playwright-core in go test's default output.
func TestMain(m *testing.M) { testskip.Main(m) }
