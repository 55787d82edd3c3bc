package sqlite

import (
	"strings"
	"testing"
)

// TestMediaQueryPlans checks that the media queries use indexes: no full
// scan of media or messages, no sort.
func TestMediaQueryPlans(t *testing.T) {
	s := openInternal(t)
	queries := []struct {
		name string
		sql  string
		args []any
	}{
		{"media", qMedia, []any{"m"}},
		{"media uploader", qMediaUploader, []any{"m"}},
		{"media shared", qMediaShared, []any{"u", "m"}},
		{"media garbage", qMediaGarbage, []any{1, 10}},
		{"media delete", qMediaDelete, []any{2, "m", 1, "m"}},
		{"media purge", qMediaPurge, []any{1}},
	}
	for _, q := range queries {
		plan := queryPlan(t, s, q.name, q.sql, q.args...)
		for _, step := range plan {
			if (strings.HasPrefix(step, "SCAN ") && step != "SCAN CONSTANT ROW") || strings.HasPrefix(step, "USE TEMP B-TREE") {
				t.Errorf("%s: %q in plan:\n  %s", q.name, step, strings.Join(plan, "\n  "))
			}
		}
	}
}
