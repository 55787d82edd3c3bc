package sqlite

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parley-chat/parley/internal/chat"
)

// ErrFailStopped is what every write returns after a commit failed with an
// I/O error (a failed fsync among them) until the process restarts.
var ErrFailStopped = errors.New("sqlite: the store stopped writing after an I/O error at commit; restart the server")

// failLatch is the store's fail-stop: after a failed fsync the kernel may
// have dropped the dirty pages and will not report it again, so retrying
// and trusting the next successful fsync could ack what is not on disk
// (PostgreSQL's "fsyncgate", 2018). Like PostgreSQL, which PANICs there,
// the store refuses every later write and fails its Ping (so /readyz goes
// 503 and a load balancer drains the node) until the process restarts and
// SQLite recovers the file from what is actually on disk.
type failLatch struct {
	cause atomic.Pointer[error]
}

// check returns the latched failure, if any.
func (l *failLatch) check(op string) error {
	if c := l.cause.Load(); c != nil {
		return fmt.Errorf("sqlite: %s: %w: %w (first failure: %v)", op, chat.ErrUnavailable, ErrFailStopped, *c)
	}
	return nil
}

// observe latches err if it is an I/O error of a commit, and logs it once.
func (l *failLatch) observe(log *slog.Logger, op string, err error) {
	var se *msqlite.Error
	if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_IOERR {
		return
	}
	if !l.cause.CompareAndSwap(nil, &err) {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	log.Error("STORE FAIL-STOP: a commit failed with an I/O error (a failed fsync?): its messages were not acknowledged, "+
		"and the store now refuses every write and reports not ready until the server restarts; check the disk",
		"op", op, "sqlite_code", se.Code(), "err", err)
}
