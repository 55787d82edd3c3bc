package gateway

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/parley-chat/parley/internal/chat"
)

// checkQuota refuses (413 quota_exceeded) adding bytes for the user when
// its finished media and unfinished resumable uploads would then exceed
// MediaDeps.Quota, and (429) a new resumable upload past
// MediaDeps.MaxPendingUploads unfinished ones.
func (g *Gateway) checkQuota(ctx context.Context, userID string, adding int64, newUpload bool) error {
	d := g.media
	if d.Quota <= 0 && (!newUpload || d.MaxPendingUploads <= 0) {
		return nil
	}
	var pending int64
	var count int
	if d.Uploads != nil {
		var err error
		if pending, count, err = d.Uploads.Pending(userID); err != nil {
			return err
		}
	}
	if newUpload && d.MaxPendingUploads > 0 && count >= d.MaxPendingUploads {
		return fmt.Errorf("%w: at most %d unfinished uploads at once; finish or delete one", chat.ErrRateLimited, d.MaxPendingUploads)
	}
	if d.Quota <= 0 {
		return nil
	}
	done, err := g.svc.MediaBytes(ctx, userID)
	if err != nil {
		return err
	}
	if done+pending+adding > d.Quota {
		return fmt.Errorf("%w: the media quota is %d bytes; %d are used (%d in unfinished uploads)", chat.ErrQuotaExceeded, d.Quota, done+pending, pending)
	}
	return nil
}

// quotaLocks serializes a user's quota check with the upload it admits, so
// parallel creations cannot all pass one check. Striped by user id.
type quotaLocks struct {
	seed    maphash.Seed
	stripes [64]sync.Mutex
}

func (q *quotaLocks) lock(userID string) func() {
	m := &q.stripes[maphash.String(q.seed, userID)%uint64(len(q.stripes))]
	m.Lock()
	return m.Unlock
}
