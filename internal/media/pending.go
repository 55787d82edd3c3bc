package media

import (
	"os"
	"strings"
)

// Pending sums the declared lengths of owner's unfinished resumable uploads
// and counts them (the media quota counts them with finished media). It
// reads every upload's state file: their number is bounded by the per-user
// cap and by expiry (--media-gc-after).
func (u *Uploads) Pending(owner string) (bytes int64, count int, err error) {
	entries, err := os.ReadDir(u.dir)
	if err != nil {
		return 0, 0, unavailable("list uploads", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		info, err := u.Get(id)
		if err != nil || info.Owner != owner || info.Done {
			continue
		}
		bytes += info.Length
		count++
	}
	return bytes, count, nil
}
