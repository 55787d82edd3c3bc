package postgres

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/testskip"
)

// TestQueryPlans checks with EXPLAIN that every hot-path query is answered
// by index lookups: with sequential scans disabled (the tables are empty, so
// the planner would otherwise prefer them) no plan may still contain one,
// which would mean no index serves the query.
func TestQueryPlans(t *testing.T) {
	dbURL := os.Getenv("PARLEY_TEST_POSTGRES")
	if dbURL == "" {
		testskip.Skip(t, "PARLEY_TEST_POSTGRES not set: PostgreSQL store tests skipped")
	}
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	schema := pgx.Identifier{"parley_plans_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))}.Sanitize()
	for _, q := range []string{`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`, `CREATE SCHEMA ` + schema} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`) //nolint:errcheck // best effort
	s, err := Open(ctx, dbURL, Options{Schema: strings.Trim(schema, `"`), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, q := range []string{`SET search_path = ` + schema, `SET enable_seqscan = off`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	queries := []struct {
		name string
		sql  string
		args []any
	}{
		{"conversation", qConversation, []any{"c"}},
		{"direct pair", qDirectPair, []any{"a", "b"}},
		{"user conversations", qUserConversations, []any{"u"}},
		{"unread count", qUnreadCount, []any{"c", "u"}},
		{"cursors", qCursors, []any{"u"}},
		{"member", qMember, []any{"c", "u"}},
		{"lock conversation", qLockConversation, []any{"c"}},
		{"conversation members", qConvMembers, []any{"c"}},
		{"promote admin", qPromoteAdmin, []any{"c"}},
		{"duplicate", qDuplicate, []any{"u", "k"}},
		{"append", qAppend, []any{"c", "u", "k", "id", "d", "text", "", int64(0), int64(1), int64(2), "hi", nil}},
		{"page newest", qPageNewest, []any{"c", 10}},
		{"page before", qPageBefore, []any{"c", 5, 10}},
		{"page forward", qPageForward, []any{"c", 5, 10}},
		{"watermark", qWatermark, []any{"c", "u", int64(1), int64(1)}},
		{"devices", `SELECT ` + deviceCols + ` FROM devices WHERE user_id = $1 ORDER BY created_at, ord`, []any{"u"}},
		{"device sessions", `DELETE FROM sessions WHERE device_id = $1`, []any{"d"}},
		{"key bundles", qKeyBundles, []any{"u"}},
		{"prekey claim", qPrekeyClaim, []any{"d"}},
		{"media", qMedia, []any{"m"}},
		{"media can read", qMediaCanRead, []any{"m", "u"}},
		{"media mark referenced", qMediaMarkReferenced, []any{int64(1)}},
		{"media garbage", qMediaGarbage, []any{int64(1), 10}},
		{"media lock", qMediaLock, []any{"m", int64(1)}},
		{"media referenced", qMediaReferenced, []any{"m"}},
		{"media purge", qMediaPurge, []any{int64(1)}},
		{"push subs of user", qPushSubsOfUser, []any{"u"}},
		{"push users with subs", qPushUsersWithSubs, []any{[]string{"u"}}},
		{"push record", qPushRecord, []any{"u", "c", "s", int64(1), int64(1)}},
		{"push any due pending", qPushAnyDuePending, []any{int64(1)}},
		{"push any due job", qPushAnyDueJob, []any{int64(1)}},
		{"push due pending", qPushDuePending, []any{int64(1), 10}},
		{"push queue jobs", qPushQueueJobs, []any{"u", "c", "alert", "n", int64(1), int64(1), int64(1), int64(1)}},
		{"push claim", qPushClaim, []any{int64(1), 10, int64(2)}},
		{"unread total", qUnreadTotal, []any{"u"}},
	}
	for _, q := range queries {
		rows, err := conn.Query(ctx, "EXPLAIN "+q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		for _, step := range plan {
			if strings.Contains(step, "Seq Scan") {
				t.Errorf("%s: sequential scan in plan:\n  %s", q.name, strings.Join(plan, "\n  "))
				break
			}
		}
	}
}
