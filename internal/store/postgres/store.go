// Package postgres is Parley's scale-out chat.Store: PostgreSQL through pgx
// (a pgxpool.Pool), shared by any number of parleyd nodes.
//
// # Schema and migrations
//
// The schema lives in embedded SQL migrations (migrations/*.sql) that goose
// applies at Open through the pgx database/sql driver, under a session
// advisory lock (pg_advisory_lock, keyed by the schema) so that nodes starting
// together migrate one after the other. Options.Schema selects the schema
// (search_path); it must exist.
//
// Everything a conversation owns is keyed by conversation id first: messages
// have PRIMARY KEY (conversation_id, seq), members PRIMARY KEY
// (conversation_id, user_id). Idempotency keys, which the contract scopes to a
// sender across conversations, live in their own table message_keys keyed by
// (sender_id, client_message_id), so that the messages table has no index
// that crosses conversations.
//
// # Sequence numbers across nodes
//
// The conversation row carries last_seq. Every transaction that appends to a
// conversation or changes its members first locks that row (SELECT ... FOR
// NO KEY UPDATE, the lock an UPDATE takes) and holds it until it commits, so
// appends to one conversation serialize on its row lock, across connections
// and nodes, while appends to different conversations run in parallel. Under
// the lock one statement checks the idempotency key and the membership,
// inserts the message at last_seq + 1 and raises last_seq: a message is stored
// if and only if the counter moves, so seqs are gapless and unique.
//
// AppendBatch is one transaction sent as one pipeline (one network round trip
// for the whole batch, statements prepared and cached per connection by pgx):
// the locks of the batch's conversations in id order (so two batches never
// deadlock on each other), then one statement per message. No per-message
// outcome (unknown conversation, non-member, duplicate, a duplicate committed
// concurrently by another node) raises an SQL error, so one message's failure
// never aborts the others and no SAVEPOINT (subtransaction) is needed.
//
// # Errors
//
// "No rows" becomes chat.ErrNotFound, unique violations (23505)
// chat.ErrConflict, foreign key violations (23503) chat.ErrNotFound (a
// referenced row is missing), other integrity violations and data exceptions
// (class 23 and 22, such as a NUL byte in text) chat.ErrInvalid, and every
// other failure (connection refused or lost, timeouts, a closed store, a
// cancelled context) an error wrapping both chat.ErrUnavailable and its cause.
// Transactions PostgreSQL aborts for a deadlock or a serialization failure
// are retried a few times first.
//
// PostgreSQL text cannot hold NUL bytes (nor invalid UTF-8): such a message
// content is refused with chat.ErrInvalid, per message, before anything is
// sent to the server.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/parley-chat/parley/internal/chat"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Defaults for Options fields left at zero.
const (
	DefaultMaxConns       = 10
	DefaultConnectTimeout = 5 * time.Second
	// DefaultPageLimit is the page size of Messages when Page.Limit is 0.
	DefaultPageLimit = 50
	// maxAttempts bounds the runs of a transaction that PostgreSQL aborted
	// for a deadlock or a serialization failure.
	maxAttempts = 4
)

// Options tunes a Store. The zero value is ready to use; settings given in
// the URL (pool_max_conns, connect_timeout, search_path, ...) apply unless
// the corresponding field is set.
type Options struct {
	// MaxConns is the size of the connection pool (default: pool_max_conns
	// from the URL, else 10). Every parleyd node has its own pool: keep the
	// sum under the server's max_connections.
	MaxConns int32
	// ConnectTimeout bounds establishing one connection (default: the URL's
	// connect_timeout, else 5s), so an unreachable server fails fast with
	// chat.ErrUnavailable.
	ConnectTimeout time.Duration
	// Schema, if set, is the schema (search_path) holding Parley's tables. It
	// must exist. Default: the URL's search_path, else the server's default
	// (public).
	Schema string
}

// Store is the PostgreSQL chat.Store. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	closeOnce sync.Once
}

var _ chat.Store = (*Store)(nil)

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value connection string), applies the pending migrations and returns
// the Store. chat.ErrInvalid for a malformed url, chat.ErrUnavailable when
// the server cannot be reached.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w: %v", chat.ErrInvalid, err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	} else if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "parleyd"
	}
	if cfg.ConnConfig.RuntimeParams["plan_cache_mode"] == "" {
		// Every statement of the store is a key lookup whose best plan does
		// not depend on the parameter values. With the default (auto) the
		// server may keep re-planning a prepared statement for every
		// execution (custom plans); AppendBatch's statement costs about four
		// times as much that way.
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapErr("open", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// migrate applies the embedded migrations with goose on a database/sql view
// of the pool, holding the migration advisory lock of the schema.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return mapErr("migrate", err)
	}
	if schema == nil {
		return fmt.Errorf("postgres: migrate: no schema of the search_path exists: %w", chat.ErrInvalid)
	}
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(migrationLock{}))
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return mapErr("migrate", err)
	}
	return nil
}

// migrationLock serializes migrations of one schema across nodes with a
// session advisory lock. Unlike goose's own Postgres locker, which polls
// pg_try_advisory_lock every 5s, it waits in pg_advisory_lock, so a node
// starting behind another one proceeds the moment the first one is done.
// The key is derived from the schema: separate schemas (tenants, tests)
// migrate independently.
type migrationLock struct{}

const migrationLockKey = `hashtextextended('parley/migrations/' || current_schema(), 0)`

func (migrationLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+migrationLockKey+`)`)
	return err
}

func (migrationLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock(`+migrationLockKey+`)`).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return errors.New("postgres: migration lock was not held")
	}
	return nil
}

// Ping checks that the server answers; chat.ErrUnavailable if it does not.
func (s *Store) Ping(ctx context.Context) error {
	return mapErr("ping", s.pool.Ping(ctx))
}

// Close closes the pool, waiting for connections in use to be returned. It is
// safe to call more than once; afterwards every method fails with
// chat.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// querier is what *pgxpool.Pool and pgx.Tx have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// write runs fn in one read-committed transaction and returns its error,
// mapped, after a rollback. A run that PostgreSQL aborted for a deadlock or a
// serialization failure is retried from the start, so fn must not keep state
// from an earlier run.
func (s *Store) write(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	return mapErr(op, retry(ctx, func() error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, fn)
	}))
}

// retry runs fn until it succeeds, fails for a reason other than a deadlock
// or serialization failure, or maxAttempts runs failed.
func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = fn()
		if err == nil || !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
}

// retryable reports whether err is a transaction PostgreSQL aborted and that
// may pass when run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// mapErr turns a database error into one wrapping a chat sentinel, naming
// the operation and keeping the cause. Errors that already carry a sentinel
// pass through unchanged; nil stays nil.
func mapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case chat.IsDomainError(err):
		return err
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("postgres: %s: %w (%v)", op, chat.ErrConflict, err)
		case pe.Code == "23503": // foreign_key_violation
			return fmt.Errorf("postgres: %s: %w: a referenced row is missing (%v)", op, chat.ErrNotFound, err)
		case strings.HasPrefix(pe.Code, "23"), strings.HasPrefix(pe.Code, "22"):
			// Integrity constraint violations and data exceptions: the
			// request carried something the schema refuses (a NUL byte in
			// text, invalid UTF-8, a failed CHECK).
			return fmt.Errorf("postgres: %s: %w (%v)", op, chat.ErrInvalid, err)
		}
	}
	// Connection failures, timeouts, a closed pool, a cancelled context,
	// the server shutting down: the cause stays in the chain so that callers
	// can still tell context.Canceled apart.
	return fmt.Errorf("postgres: %s: %w: %w", op, chat.ErrUnavailable, err)
}

// validText reports whether PostgreSQL can store s in a text column: valid
// UTF-8 without NUL bytes.
func validText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// validKeys reports whether every s is valid text. A lookup by a key that is
// not valid text cannot match a stored row: callers answer "not found"
// without asking the server (which would refuse the parameter).
func validKeys(ss ...string) bool {
	for _, s := range ss {
		if !validText(s) {
			return false
		}
	}
	return true
}

// rowsAffectedOne maps the outcome of an UPDATE of one row by key: no row
// affected means the key does not exist.
func rowsAffectedOne(op string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return mapErr(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	return nil
}
