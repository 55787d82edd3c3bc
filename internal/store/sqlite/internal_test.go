package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestQueryPlans checks with EXPLAIN QUERY PLAN that every hot-path query is
// answered by index lookups: no full scan of any table, and a sort only
// where one is unavoidable (a user's conversations by updated_at, which is
// a sort of that user's conversations only).
func TestQueryPlans(t *testing.T) {
	s := openInternal(t)
	queries := []struct {
		name      string
		sql       string
		args      []any
		sortingOK bool
	}{
		{"conversation", qConversation, []any{"c"}, false},
		{"members", qMembers, []any{"c"}, false},
		{"last message", qLastMessage, []any{"c", 1}, false},
		{"user conversations", qUserConversations, []any{"u"}, true},
		{"user conversation members", qUserConversationMembers, []any{"u"}, false},
		{"user last messages", qUserLastMessages, []any{"u"}, false},
		{"unread count", qUnreadCount, []any{"c", "u"}, false},
		{"cursors", qCursors, []any{"u"}, false},
		{"member", qMember, []any{"u", "c"}, false},
		{"append duplicate", qAppendDuplicate, []any{"u", "x"}, false},
		{"append members", qAppendMembers, []any{"c"}, false},
		{"append bump", qAppendBump, []any{1, 2, "c"}, false},
		{"page newest", qPageNewest, []any{"c", 10}, false},
		{"page before", qPageBefore, []any{"c", 5, 10}, false},
		{"page forward", qPageForward, []any{"c", 5, 10}, false},
		{"watermark", qWatermark, []any{"c", "u"}, false},
		{"devices", qDevices, []any{"u"}, false},
		{"direct pair", qDirectPair, []any{"a", "b"}, false},
		{"session", qSession, []any{"h"}, false},
		{"device sessions", `DELETE FROM sessions WHERE device_id = ?`, []any{"d"}, false},
		{"push: subscription by endpoint", qPushSubByEndpoint, []any{"webpush", "e"}, false},
		{"push: subscriptions of device", qPushSubsOfDevice, []any{"d"}, false},
		{"push: subscriptions of user", qPushSubsOfUser, []any{"u"}, false},
		{"push: device subscriptions delete", `DELETE FROM push_subscriptions WHERE device_id = ?`, []any{"d"}, false},
		{"push: has subscriptions", qPushHasSubs, []any{"u"}, false},
		{"push: record", qPushRecord, []any{"u", "c", "s", 1, 2}, false},
		{"push: any due pending", qPushAnyDuePending, []any{1}, false},
		{"push: due pending", qPushDuePending, []any{1, 10}, false},
		{"push: notified", qPushNotified, []any{1, "u", "c"}, false},
		{"push: queue jobs", qPushQueueJobs, []any{"u", "c", "alert", "n", 1, 1, 1, 1}, false},
		{"push: pending of", qPushPendingOf, []any{"u", "c"}, false},
		{"push: reset", qPushReset, []any{1, "u", "c"}, false},
		{"push: any due job", qPushAnyDueJob, []any{1}, false},
		{"push: due jobs", qPushDueJobs, []any{1, 10}, false},
		{"push: lease", qPushLease, []any{1, "s", "c", 1}, false},
		{"push: job done", qPushJobDone, []any{"s", "c", 1}, false},
		{"push: job retry", qPushJobRetry, []any{1, "s", "c", 1}, false},
		{"push: subscription delete", qPushSubDelete, []any{"s"}, false},
		{"push: unread total", qUnreadTotal, []any{"u"}, false},
	}
	for _, q := range queries {
		plan := queryPlan(t, s, q.name, q.sql, q.args...)
		for _, step := range plan {
			bad := strings.HasPrefix(step, "SCAN ") ||
				(strings.HasPrefix(step, "USE TEMP B-TREE") && !q.sortingOK)
			if bad {
				t.Errorf("%s: %q in plan:\n  %s", q.name, step, strings.Join(plan, "\n  "))
			}
		}
	}
}

// TestConnectionSettings checks the pragmas every connection of both pools
// gets from the DSN, and that the read pool cannot write.
func TestConnectionSettings(t *testing.T) {
	s := openInternal(t)
	ctx := t.Context()
	want := []struct {
		pragma         string
		writer, reader string
	}{
		{"journal_mode", "wal", "wal"},
		{"synchronous", "2", ""}, // FULL; readers never commit
		{"foreign_keys", "1", "1"},
		{"busy_timeout", "5000", "5000"},
	}
	// Hold several reader connections at once so the check covers more
	// than the first one the pool opened.
	for i := range DefaultReadConns {
		c, err := s.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, w := range want {
			if w.reader == "" {
				continue
			}
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+w.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != w.reader {
				t.Errorf("reader %d: %s = %s, want %s", i, w.pragma, got, w.reader)
			}
		}
		if _, err := c.ExecContext(ctx, `INSERT INTO users (id, username, created_at, password_hash) VALUES ('x', 'x', 0, x'')`); err == nil {
			t.Errorf("reader %d accepted a write", i)
		}
	}
	for _, w := range want {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+w.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != w.writer {
			t.Errorf("writer: %s = %s, want %s", w.pragma, got, w.writer)
		}
	}
	if n := s.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer pool allows %d connections, want 1", n)
	}
}

// TestAppendRollsBackOneMessage makes single messages fail inside the
// transaction, once at the insert and once at the counter update after the
// insert succeeded, and checks that the SAVEPOINT undoes exactly that
// message: the others commit, seqs stay gapless, nothing half-written stays.
func TestAppendRollsBackOneMessage(t *testing.T) {
	s := openInternal(t)
	ctx := t.Context()
	for _, u := range []string{"a", "b"} {
		if err := s.CreateUser(ctx, chat.User{ID: u, Username: "user-" + u}, nil); err != nil {
			t.Fatal(err)
		}
	}
	g := chat.Conversation{ID: "g", Members: []chat.Member{{UserID: "a", Role: chat.RoleAdmin}, {UserID: "b"}}}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, trigger := range []string{
		`CREATE TRIGGER fail_insert BEFORE INSERT ON messages WHEN NEW.content = 'boom'
		 BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`,
		`CREATE TRIGGER fail_bump BEFORE UPDATE OF last_seq ON conversations WHEN NEW.updated_at = 4242
		 BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`,
	} {
		if _, err := s.w.ExecContext(ctx, trigger); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(client, content string, ts int64) chat.Message {
		return chat.Message{ID: "id-" + client, ClientID: client, ConversationID: "g", SenderID: "a",
			Content: content, ContentType: chat.ContentText, Timestamp: ts}
	}
	res, err := s.AppendBatch(ctx, []chat.Message{
		msg("1", "one", 1000),
		msg("2", "boom", 1001),
		msg("3", "three", 1002),
		msg("4", "four", 4242),
		msg("5", "five", 1004),
	})
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	wantSeq := []int64{1, 0, 2, 0, 3}
	for i, r := range res {
		if wantSeq[i] == 0 {
			if !errors.Is(r.Err, chat.ErrInvalid) {
				t.Errorf("message %d: err %v, want ErrInvalid", i, r.Err)
			}
			continue
		}
		if r.Err != nil || r.Message.Seq != wantSeq[i] {
			t.Errorf("message %d: seq %d err %v, want seq %d", i, r.Message.Seq, r.Err, wantSeq[i])
		}
	}
	page, _, err := s.Messages(ctx, "g", chat.Page{Forward: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range page {
		got = append(got, fmt.Sprintf("%d:%s", m.Seq, m.Content))
	}
	if want := []string{"1:one", "2:three", "3:five"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	c, err := s.Conversation(ctx, "g")
	if err != nil || c.LastSeq != 3 || c.UpdatedAt != 1004 {
		t.Errorf("conversation after the batch: last_seq %d updated_at %d (%v)", c.LastSeq, c.UpdatedAt, err)
	}
	// The refused messages left no idempotency key behind.
	res, err = s.AppendBatch(ctx, []chat.Message{msg("2", "two", 1005), msg("4", "four", 1006)})
	if err != nil || res[0].Duplicate || res[1].Duplicate || res[0].Message.Seq != 4 || res[1].Message.Seq != 5 {
		t.Errorf("retry of the refused messages = %+v, %v", res, err)
	}
}

// queryPlan returns the steps of EXPLAIN QUERY PLAN for a query.
func queryPlan(t *testing.T, s *Store, name, sql string, args ...any) []string {
	t.Helper()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := closeRows(rows); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestFailStopCoversEveryWrite latches the fail-stop as a failed commit
// would (the latch itself is proven end to end by TestFailedFsyncFailStop)
// and checks that writes of every shape are refused with ErrFailStopped:
// transactions, single statements, and the group commit; and that Ping
// fails, so /readyz does.
func TestFailStopCoversEveryWrite(t *testing.T) {
	s := openInternal(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, chat.User{ID: "a", Username: "user-a"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGroup(ctx, chat.Conversation{ID: "g", Members: []chat.Member{{UserID: "a", Role: chat.RoleAdmin}}}); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("disk I/O error (test)")
	s.failed.cause.Store(&cause)
	_, appendErr := s.AppendBatch(ctx, []chat.Message{{ID: "m", ClientID: "c", ConversationID: "g", SenderID: "a", Content: "x", ContentType: chat.ContentText}})
	for name, err := range map[string]error{
		"CreateUser":         s.CreateUser(ctx, chat.User{ID: "b", Username: "user-b"}, nil),
		"RenameConversation": s.RenameConversation(ctx, "g", "new", 1),
		"Block":              s.Block(ctx, "a", "b", 1),
		"DeleteSession":      s.DeleteSession(ctx, "hash"),
		"AppendBatch":        appendErr,
		"Ping":               s.Ping(ctx),
	} {
		if !errors.Is(err, ErrFailStopped) || !errors.Is(err, chat.ErrUnavailable) {
			t.Errorf("%s after the fail-stop: %v, want ErrFailStopped and ErrUnavailable", name, err)
		}
	}
}
