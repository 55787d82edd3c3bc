package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store/sqlite"
	"github.com/parley-chat/parley/internal/store/storetest"
)

func openTemp(t testing.TB, opts sqlite.Options) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) chat.Store {
		s, path := openTemp(t, sqlite.Options{})
		t.Cleanup(func() {
			// Runs after the suite closed s: the file it left must be sound.
			re, err := sqlite.Open(context.Background(), path, sqlite.Options{ReadConns: 1})
			if err != nil {
				t.Errorf("reopen: %v", err)
				return
			}
			defer re.Close()
			if err := re.IntegrityCheck(context.Background()); err != nil {
				t.Errorf("IntegrityCheck: %v", err)
			}
		})
		return s
	})
}

func TestKeyStoreConformance(t *testing.T) {
	storetest.RunKeyStore(t, func(t *testing.T) chat.Store {
		s, _ := openTemp(t, sqlite.Options{})
		return s
	})
}

func TestMediaStoreConformance(t *testing.T) {
	storetest.RunMediaStore(t, func(t *testing.T) chat.Store {
		s, _ := openTemp(t, sqlite.Options{})
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t, sqlite.Options{})
	now := time.Now().UnixMilli()
	alice := chat.User{ID: "u-alice", Username: "alice", CreatedAt: now}
	bob := chat.User{ID: "u-bob", Username: "bob", CreatedAt: now}
	for _, u := range []chat.User{alice, bob} {
		if err := s.CreateUser(ctx, u, []byte("h")); err != nil {
			t.Fatal(err)
		}
	}
	g := chat.Conversation{ID: "c-1", Type: chat.TypeGroup, Name: "g", CreatedAt: now, UpdatedAt: now, Members: []chat.Member{
		{UserID: alice.ID, Role: chat.RoleAdmin, JoinedAt: now}, {UserID: bob.ID, Role: chat.RoleMember, JoinedAt: now},
	}}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	var sent []chat.Message
	for i := range 3 {
		m := chat.Message{ID: "m-" + string(rune('a'+i)), ClientID: "cl-" + string(rune('a'+i)), ConversationID: g.ID,
			SenderID: alice.ID, Content: "hello", ContentType: chat.ContentText, Timestamp: now + int64(i)}
		res, err := s.AppendBatch(ctx, []chat.Message{m})
		if err != nil || res[0].Err != nil {
			t.Fatalf("AppendBatch: %v %v", err, res)
		}
		sent = append(sent, res[0].Message)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		t.Errorf("WAL not checkpointed at Close: %d bytes left", fi.Size())
	}

	s2, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if err := s2.IntegrityCheck(ctx); err != nil {
		t.Fatalf("IntegrityCheck: %v", err)
	}
	if u, err := s2.User(ctx, alice.ID); err != nil || u != alice {
		t.Errorf("User after reopen = %+v, %v", u, err)
	}
	page, _, err := s2.Messages(ctx, g.ID, chat.Page{Forward: true, Limit: 10})
	if err != nil || len(page) != len(sent) {
		t.Fatalf("Messages after reopen = %v, %v", page, err)
	}
	for i := range sent {
		if page[i] != sent[i] {
			t.Errorf("message %d after reopen = %+v, want %+v", i, page[i], sent[i])
		}
	}
	// Seqs and idempotency keys continue.
	res, err := s2.AppendBatch(ctx, []chat.Message{
		{ID: "m-z", ClientID: "cl-a", ConversationID: g.ID, SenderID: alice.ID, Content: "retry", ContentType: chat.ContentText, Timestamp: now},
		{ID: "m-y", ClientID: "cl-new", ConversationID: g.ID, SenderID: bob.ID, Content: "new", ContentType: chat.ContentText, Timestamp: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[0].Message != sent[0] {
		t.Errorf("retry after reopen = %+v", res[0])
	}
	if res[1].Err != nil || res[1].Message.Seq != 4 {
		t.Errorf("new message after reopen = %+v", res[1])
	}
}

func TestOpenRejectsMemory(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file::memory:"} {
		if _, err := sqlite.Open(t.Context(), p, sqlite.Options{}); !errors.Is(err, chat.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "we?ird #dir %20")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "db.sqlite")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %q: %v", path, err)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	s, _ := openTemp(t, sqlite.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
	}
	_, err := s.AppendBatch(t.Context(), []chat.Message{{ID: "m", ConversationID: "c", SenderID: "u"}})
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("AppendBatch after Close = %v, want ErrUnavailable", err)
	}
}

// TestLockedIsUnavailable holds the write lock from another connection (as
// another process would) past busy_timeout: writes fail with ErrUnavailable,
// reads still work (WAL), and writes recover once the lock is gone.
func TestLockedIsUnavailable(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t, sqlite.Options{BusyTimeout: 50 * time.Millisecond})
	defer s.Close()
	if err := s.CreateUser(ctx, chat.User{ID: "u1", Username: "alice"}, nil); err != nil {
		t.Fatal(err)
	}

	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	err = s.CreateUser(ctx, chat.User{ID: "u2", Username: "bob"}, nil)
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Errorf("write while locked = %v, want ErrUnavailable", err)
	}
	if _, err := s.User(ctx, "u1"); err != nil {
		t.Errorf("read while locked: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, chat.User{ID: "u2", Username: "bob"}, nil); err != nil {
		t.Errorf("write after the lock went away: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	s, _ := openTemp(t, sqlite.Options{})
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.AppendBatch(ctx, []chat.Message{{ID: "m", ConversationID: "c", SenderID: "u"}})
	if !errors.Is(err, chat.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("AppendBatch with a cancelled context = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	// The writer connection is still usable afterwards.
	if err := s.CreateUser(t.Context(), chat.User{ID: "u", Username: "alice"}, nil); err != nil {
		t.Errorf("write after a cancelled one: %v", err)
	}
}
