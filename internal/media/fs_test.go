package media_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/internal/media"
	"github.com/parley-chat/parley/internal/media/blobstest"
)

func TestFSBlobs(t *testing.T) {
	blobstest.Run(t, func(t *testing.T) media.Blobs {
		b, err := media.NewFS(filepath.Join(t.TempDir(), "media"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestFSCleansTemporaryFiles: a crash mid-Put leaves a file in .tmp, never
// a blob; the next start removes it.
func TestFSCleansTemporaryFiles(t *testing.T) {
	root := filepath.Join(t.TempDir(), "media")
	if _, err := media.NewFS(root); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(root, ".tmp", "put-123")
	if err := os.WriteFile(left, []byte("half a blob"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := media.NewFS(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("temporary file survived a restart: %v", err)
	}
}
