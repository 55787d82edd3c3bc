// Package sqlite is Parley's embedded chat.Store: one SQLite database file
// (modernc.org/sqlite, pure Go, no cgo) holding users, devices, sessions,
// conversations, members and messages.
//
// # Connections
//
// A Store keeps two database/sql pools on the same file:
//
//   - the writer: exactly one connection (SetMaxOpenConns(1)) that performs
//     every write, inside immediate transactions (_txlock=immediate), so
//     writers queue in Go instead of fighting over SQLite's lock;
//   - the readers: several read-only connections (mode=ro) that serve
//     queries concurrently with the writer thanks to WAL.
//
// Every connection gets its pragmas from the DSN (_pragma=...), so a
// connection the pool opens later is configured like the first one: WAL
// journal, synchronous=FULL (an acknowledged commit survives kill -9 and power
// loss), busy_timeout and foreign keys.
//
// # Schema
//
// The schema lives in embedded SQL migrations (migrations/*.sql) applied by
// goose at Open. Everything a conversation owns is keyed by conversation id
// first: messages have PRIMARY KEY (conversation_id, seq), members PRIMARY
// KEY (conversation_id, user_id), and conversations carry the last_seq counter
// raised in the same transaction as each insert, which makes seqs gapless.
//
// # Errors
//
// "No rows" becomes chat.ErrNotFound, unique violations chat.ErrConflict,
// foreign key violations chat.ErrNotFound (a referenced row is missing), other
// constraint violations chat.ErrInvalid, and every other failure (I/O, disk
// full, a lock held beyond busy_timeout, a closed store, a cancelled context)
// an error wrapping both chat.ErrUnavailable and its cause.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parley-chat/parley/internal/chat"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Defaults for Options fields left at zero.
const (
	DefaultReadConns   = 4
	DefaultBusyTimeout = 5 * time.Second
	// DefaultPageLimit is the page size of Messages when Page.Limit is 0.
	DefaultPageLimit = 50
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// ReadConns is the number of connections in the read pool (default 4).
	ReadConns int
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection (another process, a checkpoint) before it fails with
	// chat.ErrUnavailable (default 5s).
	BusyTimeout time.Duration
	// Logger receives the fail-stop error (default slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.ReadConns <= 0 {
		o.ReadConns = DefaultReadConns
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	return o
}

// Store is the SQLite chat.Store. It is safe for concurrent use.
type Store struct {
	w *sql.DB // the one writer connection
	r *sql.DB // the read-only pool

	appendStmts *appendStmts // prepared on w
	failed      failLatch    // set by an I/O error at commit: see failstop.go
	log         *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

var _ chat.Store = (*Store)(nil)

// Open opens (creating it if needed) the database file at path, applies the
// pending migrations and returns the Store. path must name a file: an
// in-memory database cannot be shared by the writer and the read pool.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: need a plain file path: %w", path, chat.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %q: %w", path, err)
	}
	opts = opts.withDefaults()

	w, err := sql.Open("sqlite", dsn(abs, false, opts.BusyTimeout))
	if err != nil {
		return nil, mapErr("open writer", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, mapErr("open writer", err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", dsn(abs, true, opts.BusyTimeout))
	if err != nil {
		w.Close()
		return nil, mapErr("open readers", err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, mapErr("open readers", err)
	}
	st, err := prepareAppend(ctx, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, mapErr("prepare", err)
	}
	return &Store{w: w, r: r, appendStmts: st, log: opts.Logger}, nil
}

// dsn builds the SQLite URI of one pool. Pragmas travel in the DSN so that
// every connection the pool ever opens gets them.
func dsn(path string, readOnly bool, busy time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	if readOnly {
		// The file is already in WAL mode (the writer opened it first);
		// setting journal_mode here would be a write.
		q.Add("_pragma", "foreign_keys(1)")
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "journal_size_limit(67108864)")
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return mapErr("migrate", err)
	}
	return nil
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.failed.check("ping"); err != nil {
		return err
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM users LIMIT 1)`).Scan(&n)
	return mapErr("ping", err)
}

// Close checkpoints the WAL into the database file (truncating it) and closes
// both pools. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Readers first: an open read snapshot would keep the checkpoint from
		// truncating the WAL.
		s.appendStmts.close()
		rerr := s.r.Close()
		var cerr error
		if _, err := s.w.ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			cerr = mapErr("checkpoint", err)
		}
		werr := s.w.Close()
		s.closeErr = errors.Join(rerr, cerr, werr)
	})
	return s.closeErr
}

// IntegrityCheck runs PRAGMA integrity_check and PRAGMA foreign_key_check
// and reports every problem they find; nil means the file is sound.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	var problems []string
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return mapErr("integrity check", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return mapErr("integrity check", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := closeRows(rows); err != nil {
		return mapErr("integrity check", err)
	}

	rows, err = s.r.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return mapErr("foreign key check", err)
	}
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			rows.Close()
			return mapErr("foreign key check", err)
		}
		problems = append(problems, fmt.Sprintf("foreign key %d of %s row %v points to a missing %s", fkid, table, rowid.Int64, parent))
	}
	if err := closeRows(rows); err != nil {
		return mapErr("foreign key check", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("sqlite: integrity check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}

// closeRows closes rows and returns the error of the iteration, if any.
func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// write runs fn in one immediate transaction on the writer connection.
// fn's error, mapped, is returned after a rollback.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if err := s.failed.check(op); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		s.failed.observe(s.log, op, err)
		return mapErr(op, err)
	}
	err = tx.Commit()
	s.failed.observe(s.log, op, err)
	return mapErr(op, err)
}

// exec runs one statement as its own transaction on the writer connection,
// behind the same fail-stop latch as write.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := s.failed.check("write"); err != nil {
		return nil, err
	}
	res, err := s.w.ExecContext(ctx, query, args...)
	s.failed.observe(s.log, "write", err)
	return res, err
}

// read runs fn in one read transaction of the read pool, so that its queries
// see one snapshot.
func (s *Store) read(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to undo
	return mapErr(op, fn(tx))
}

// mapErr turns a database error into one wrapping a chat sentinel, naming
// the operation and keeping the cause in the message. Errors that already
// carry a sentinel pass through unchanged; nil stays nil.
func mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case chat.IsDomainError(err):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: %s: %w", op, chat.ErrNotFound)
	}
	var se *msqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("sqlite: %s: %w (%v)", op, chat.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("sqlite: %s: %w: a referenced row is missing (%v)", op, chat.ErrNotFound, err)
		default:
			return fmt.Errorf("sqlite: %s: %w (%v)", op, chat.ErrInvalid, err)
		}
	}
	return fmt.Errorf("sqlite: %s: %w: %w", op, chat.ErrUnavailable, err)
}
