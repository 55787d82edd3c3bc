package media

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Catalog is what the collector needs of the chat service.
type Catalog interface {
	// CollectMedia deletes from the catalogue items older than olderThan that
	// no message references, and returns them.
	CollectMedia(ctx context.Context, olderThan time.Duration, limit int) ([]chat.Media, error)
}

// Collector deletes what was uploaded and never sent: media items no
// message referenced within After of their upload (the catalogue first,
// in a transaction that re-checks the references; then their blobs), and
// resumable uploads untouched for After.
type Collector struct {
	Catalog Catalog
	Blobs   Blobs
	Uploads *Uploads // nil: none
	After   time.Duration
	Every   time.Duration // how often Run collects
	Log     *slog.Logger
	Now     func() time.Time // nil: time.Now
}

// collectBatch is how many items one catalogue call deletes.
const collectBatch = 500

// Collect runs one pass and returns how many media items and uploads it
// deleted.
func (c *Collector) Collect(ctx context.Context) (items, uploads int, err error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		gone, cerr := c.Catalog.CollectMedia(ctx, c.After, collectBatch)
		for _, m := range gone {
			// The item is gone from the catalogue: nothing can reach the
			// blob any more. A failure here leaves an orphan blob, logged.
			if derr := c.Blobs.Delete(ctx, m.BlobKey); derr != nil {
				log.Warn("media collection: deleting a blob failed; it stays orphaned", "media", m.ID, "key", m.BlobKey, "err", derr)
			}
		}
		items += len(gone)
		if cerr != nil {
			err = cerr
			break
		}
		if len(gone) < collectBatch {
			break
		}
	}
	if c.Uploads != nil {
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		n, uerr := c.Uploads.Expire(now().Add(-c.After))
		uploads = n
		err = errors.Join(err, uerr)
	}
	return items, uploads, err
}

// Run collects every Every until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(c.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		items, uploads, err := c.Collect(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("media collection failed", "err", err)
		}
		if items+uploads > 0 {
			log.Info("media collected", "items", items, "uploads", uploads)
		}
	}
}
