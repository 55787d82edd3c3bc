package powerfs

import (
	"os"
	"path/filepath"
	"testing"
)

// RequireEnv names the environment variable that turns a missing FUSE into
// a test failure instead of a skip (CI sets it: there the tests must run).
const RequireEnv = "PARLEY_REQUIRE_FUSE"

// MountForTest mounts a powerfs over a fresh backing directory and returns
// it; it is unmounted when the test ends. Where FUSE cannot be mounted the
// test is skipped, or fails if PARLEY_REQUIRE_FUSE=1.
func MountForTest(t testing.TB, opts Options) *FS {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v, and %s=1 says the power-loss tests must run here", err, RequireEnv)
		}
		t.Skipf("%v: the power-loss tests need root and /dev/fuse (set %s=1 to make this a failure)", err, RequireEnv)
	}
	base := t.TempDir()
	backing, mnt := filepath.Join(base, "disk"), filepath.Join(base, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := New(backing, mnt, opts)
	if err != nil {
		if os.Getenv(RequireEnv) != "1" {
			t.Skipf("cannot mount powerfs here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("powerfs: %v", err)
		}
	})
	return f
}
