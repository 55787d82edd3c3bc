package push

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/powerfs"
)

// The VAPID key a server created and started sending with survives a power
// loss: after it, the same key loads (a new one would silently break every
// Web Push subscription, which the push services tie to the key).
func TestVAPIDKeySurvivesPowerLoss(t *testing.T) {
	pfs := powerfs.MountForTest(t, powerfs.Options{TornWrites: true})
	path := filepath.Join(pfs.Dir(), "vapid.key")
	first, err := loadVAPID(path, "mailto:ops@example.com", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := pfs.Crash(); err != nil {
		t.Fatal(err)
	}
	again, err := loadVAPID(path, "mailto:ops@example.com", time.Now)
	if err != nil {
		t.Fatalf("loading the key after the power cut: %v", err)
	}
	if again.public != first.public {
		t.Fatalf("the power cut replaced the VAPID key: %s, then %s", first.public, again.public)
	}
}
