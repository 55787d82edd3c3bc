package media

import (
	"testing"

	"github.com/parley-chat/parley/internal/testskip"
)

// TestMain lists the tests skipped for want of ffmpeg or an S3-compatible
// server (PARLEY_TEST_S3) in go test's default output.
func TestMain(m *testing.M) { testskip.Main(m) }
