package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.PushStore = (*Store)(nil)

// Push queries, kept as constants so the query-plan test can check them.
const (
	pushSubCols = `s.id, s.user_id, s.device_id, s.platform, s.endpoint, s.p256dh, s.auth, s.created_at`

	qPushSubByEndpoint = `SELECT id, device_id, user_id FROM push_subscriptions WHERE platform = ? AND endpoint = ?`
	qPushSubsOfDevice  = `SELECT count(*) FROM push_subscriptions WHERE device_id = ?`
	qPushSubsOfUser    = `SELECT ` + pushSubCols + ` FROM push_subscriptions s WHERE s.user_id = ? ORDER BY s.created_at, s.rowid`

	// A new pending row for a user with at least one subscription, or one
	// more message on the existing row (the due time stays: the window).
	qPushRecord = `INSERT INTO push_pending (user_id, conversation_id, count, notified, sender_id, last_seq, due_at, updated_at)
		SELECT ?1, ?2, 1, 0, ?3, ?4, ?5, ?5
		WHERE EXISTS (SELECT 1 FROM push_subscriptions WHERE user_id = ?1)
		ON CONFLICT (user_id, conversation_id) DO UPDATE SET
			count = count + 1, sender_id = excluded.sender_id,
			last_seq = max(last_seq, excluded.last_seq), updated_at = excluded.updated_at`

	// Cheap probes on the read pool, so that an idle poll or a message to
	// users without subscriptions never takes the writer from the commits.
	qPushAnyDuePending = `SELECT 1 FROM push_pending WHERE count > notified AND due_at <= ? LIMIT 1`
	qPushAnyDueJob     = `SELECT 1 FROM push_jobs WHERE due_at <= ? LIMIT 1`
	qPushHasSubs       = `SELECT 1 FROM push_subscriptions WHERE user_id = ? LIMIT 1`

	qPushDuePending = `SELECT p.user_id, p.conversation_id, p.count, p.last_seq, coalesce(u.display_name, '')
		FROM push_pending p LEFT JOIN users u ON u.id = p.sender_id
		WHERE p.count > p.notified AND p.due_at <= ?
		ORDER BY p.due_at LIMIT ?`
	qPushNotified = `UPDATE push_pending SET notified = count, due_at = ? WHERE user_id = ? AND conversation_id = ?`

	// One job per subscription of the user; a job already queued for the
	// same conversation is replaced (and its generation bumped).
	qPushQueueJobs = `INSERT INTO push_jobs (subscription_id, conversation_id, kind, sender_name, count, badge, seq, attempts, due_at, gen)
		SELECT s.id, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, 1 FROM push_subscriptions s WHERE s.user_id = ?1
		ON CONFLICT (subscription_id, conversation_id) DO UPDATE SET
			kind = excluded.kind, sender_name = excluded.sender_name, count = excluded.count,
			badge = excluded.badge, seq = excluded.seq, attempts = 0, due_at = excluded.due_at, gen = gen + 1`

	qPushPendingOf = `SELECT count, notified, last_seq FROM push_pending WHERE user_id = ? AND conversation_id = ?`
	qPushReset     = `UPDATE push_pending SET count = 0, notified = 0, updated_at = ? WHERE user_id = ? AND conversation_id = ?`

	qPushDueJobs = `SELECT ` + pushSubCols + `, j.conversation_id, j.kind, j.sender_name, j.count, j.badge, j.seq, j.attempts, j.gen
		FROM push_jobs j JOIN push_subscriptions s ON s.id = j.subscription_id
		WHERE j.due_at <= ? ORDER BY j.due_at LIMIT ?`
	qPushLease     = `UPDATE push_jobs SET due_at = ? WHERE subscription_id = ? AND conversation_id = ? AND gen = ?`
	qPushJobDone   = `DELETE FROM push_jobs WHERE subscription_id = ? AND conversation_id = ? AND gen = ?`
	qPushJobRetry  = `UPDATE push_jobs SET due_at = ?, attempts = attempts + 1 WHERE subscription_id = ? AND conversation_id = ? AND gen = ?`
	qPushSubDelete = `DELETE FROM push_subscriptions WHERE id = ?`

	// Store.UnreadCount summed over the user's conversations.
	qUnreadTotal = `SELECT coalesce(sum(max(c.last_seq - me.read_seq -
		(SELECT count(*) FROM messages x
		  WHERE x.conversation_id = c.id AND x.seq > me.read_seq AND x.sender_id = me.user_id), 0)), 0)
		FROM members me JOIN conversations c ON c.id = me.conversation_id
		WHERE me.user_id = ?`
)

// SavePushSubscription implements chat.PushStore.
func (s *Store) SavePushSubscription(ctx context.Context, sub chat.PushSubscription, maxPerDevice int) (chat.PushSubscription, error) {
	err := s.write(ctx, "save push subscription", func(tx *sql.Tx) error {
		var id, device, user string
		err := tx.QueryRowContext(ctx, qPushSubByEndpoint, sub.Platform, sub.Endpoint).Scan(&id, &device, &user)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case device == sub.DeviceID && user == sub.UserID:
			// The same device subscribing again (every app start does):
			// keep the id, take the keys.
			sub.ID = id
			_, err := tx.ExecContext(ctx, `UPDATE push_subscriptions SET p256dh = ?, auth = ? WHERE id = ?`, sub.P256dh, sub.Auth, id)
			if err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, `SELECT created_at FROM push_subscriptions WHERE id = ?`, id).Scan(&sub.CreatedAt)
		default:
			// The endpoint now belongs to another device (a shared browser,
			// a reinstall): it must stop notifying the old one.
			if _, err := tx.ExecContext(ctx, qPushSubDelete, id); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, qPushSubsOfDevice, sub.DeviceID).Scan(&n); err != nil {
			return err
		}
		if n >= maxPerDevice {
			return fmt.Errorf("%w: a device may have at most %d push subscriptions", chat.ErrInvalid, maxPerDevice)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO push_subscriptions (id, user_id, device_id, platform, endpoint, p256dh, auth, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.UserID, sub.DeviceID, sub.Platform, sub.Endpoint, sub.P256dh, sub.Auth, sub.CreatedAt)
		return err
	})
	if err != nil {
		return chat.PushSubscription{}, err
	}
	return sub, nil
}

// DeletePushSubscription implements chat.PushStore.
func (s *Store) DeletePushSubscription(ctx context.Context, userID, id string) error {
	res, err := s.exec(ctx, `DELETE FROM push_subscriptions WHERE id = ? AND user_id = ?`, id, userID)
	return affectedOne(fmt.Sprintf("delete push subscription %q", id), res, err)
}

// DeleteDevicePushSubscriptions implements chat.PushStore.
func (s *Store) DeleteDevicePushSubscriptions(ctx context.Context, deviceID string) error {
	_, err := s.exec(ctx, `DELETE FROM push_subscriptions WHERE device_id = ?`, deviceID)
	return mapErr("delete device push subscriptions", err)
}

type scanner interface{ Scan(...any) error }

func scanPushSub(row scanner, extra ...any) (chat.PushSubscription, error) {
	var p chat.PushSubscription
	err := row.Scan(append([]any{&p.ID, &p.UserID, &p.DeviceID, &p.Platform, &p.Endpoint, &p.P256dh, &p.Auth, &p.CreatedAt}, extra...)...)
	return p, err
}

// PushSubscriptions implements chat.PushStore.
func (s *Store) PushSubscriptions(ctx context.Context, userID string) ([]chat.PushSubscription, error) {
	var out []chat.PushSubscription
	err := s.read(ctx, "push subscriptions", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qPushSubsOfUser, userID)
		if err != nil {
			return err
		}
		for rows.Next() {
			p, err := scanPushSub(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, p)
		}
		return closeRows(rows)
	})
	return out, err
}

// RecordPushes implements chat.PushStore. Most recipients have no
// subscription: they are looked up on the read pool first and cost the
// writer nothing.
func (s *Store) RecordPushes(ctx context.Context, events []chat.PushEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	var kept []chat.PushEvent
	err := s.read(ctx, "record pushes", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, qPushHasSubs)
		if err != nil {
			return err
		}
		defer stmt.Close()
		has := map[string]bool{}
		for _, e := range events {
			ok, seen := has[e.UserID]
			if !seen {
				var one int
				err := stmt.QueryRowContext(ctx, e.UserID).Scan(&one)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
				ok = err == nil
				has[e.UserID] = ok
			}
			if ok {
				kept = append(kept, e)
			}
		}
		return nil
	})
	if err != nil || len(kept) == 0 {
		return 0, err
	}
	recorded := 0
	err = s.write(ctx, "record pushes", func(tx *sql.Tx) error {
		recorded = 0
		stmt, err := tx.PrepareContext(ctx, qPushRecord)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range kept {
			res, err := stmt.ExecContext(ctx, e.UserID, e.ConversationID, e.SenderID, e.Seq, e.At)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				recorded++
			}
		}
		return nil
	})
	return recorded, err
}

// QueueDuePushes implements chat.PushStore.
func (s *Store) QueueDuePushes(ctx context.Context, now, window int64, limit int) (int, error) {
	if due, err := s.exists(ctx, qPushAnyDuePending, now); err != nil || !due {
		return 0, err
	}
	queued := 0
	err := s.write(ctx, "queue due pushes", func(tx *sql.Tx) error {
		queued = 0
		type due struct {
			user, conv, sender string
			count, seq         int64
		}
		var rows []due
		rs, err := tx.QueryContext(ctx, qPushDuePending, now, limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var d due
			if err := rs.Scan(&d.user, &d.conv, &d.count, &d.seq, &d.sender); err != nil {
				rs.Close()
				return err
			}
			rows = append(rows, d)
		}
		if err := closeRows(rs); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		st, err := prepareAll(ctx, tx, qUnreadTotal, qPushQueueJobs, qPushNotified)
		if err != nil {
			return err
		}
		defer closeAll(st)
		unread, queue, notified := st[0], st[1], st[2]
		badges := map[string]int64{}
		for _, d := range rows {
			badge, ok := badges[d.user]
			if !ok {
				if err := unread.QueryRowContext(ctx, d.user).Scan(&badge); err != nil {
					return err
				}
				badges[d.user] = badge
			}
			res, err := queue.ExecContext(ctx, d.user, d.conv, chat.PushAlert, d.sender, d.count, badge, d.seq, now)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			queued += int(n)
			if _, err := notified.ExecContext(ctx, now+window, d.user, d.conv); err != nil {
				return err
			}
		}
		return nil
	})
	return queued, err
}

// ClearPushes implements chat.PushStore. Most receipts concern
// conversations with nothing pending, so they are looked up on the read
// pool first and only the rest take the writer.
func (s *Store) ClearPushes(ctx context.Context, read []chat.Watermark, now int64) (int, error) {
	var cleared []chat.Watermark
	err := s.read(ctx, "clear pushes", func(tx *sql.Tx) error {
		for _, w := range read {
			ok, _, err := readUpToPending(ctx, tx, w)
			if err != nil {
				return err
			}
			if ok {
				cleared = append(cleared, w)
			}
		}
		return nil
	})
	if err != nil || len(cleared) == 0 {
		return 0, err
	}
	queued := 0
	err = s.write(ctx, "clear pushes", func(tx *sql.Tx) error {
		queued = 0
		for _, w := range cleared {
			ok, notified, err := readUpToPending(ctx, tx, w)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := tx.ExecContext(ctx, qPushReset, now, w.UserID, w.ConversationID); err != nil {
				return err
			}
			if notified == 0 {
				continue // nothing was shown, nothing to clear
			}
			var badge int64
			if err := tx.QueryRowContext(ctx, qUnreadTotal, w.UserID).Scan(&badge); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, qPushQueueJobs, w.UserID, w.ConversationID, chat.PushClear, "", 0, badge, w.ReadSeq, now)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			queued += int(n)
		}
		return nil
	})
	return queued, err
}

// readUpToPending says whether w reads its (user, conversation)'s pending
// row up to its last seq while the row counts something, and how many
// messages the row last notified.
func readUpToPending(ctx context.Context, tx *sql.Tx, w chat.Watermark) (ok bool, notified int64, err error) {
	var count, lastSeq int64
	err = tx.QueryRowContext(ctx, qPushPendingOf, w.UserID, w.ConversationID).Scan(&count, &notified, &lastSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	return count > 0 && w.ReadSeq >= lastSeq, notified, nil
}

// ClaimPushJobs implements chat.PushStore.
func (s *Store) ClaimPushJobs(ctx context.Context, now, leaseUntil int64, limit int) ([]chat.PushJob, error) {
	if due, err := s.exists(ctx, qPushAnyDueJob, now); err != nil || !due {
		return nil, err
	}
	var jobs []chat.PushJob
	err := s.write(ctx, "claim push jobs", func(tx *sql.Tx) error {
		jobs = jobs[:0]
		rows, err := tx.QueryContext(ctx, qPushDueJobs, now, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var j chat.PushJob
			sub, err := scanPushSub(rows, &j.ConversationID, &j.Kind, &j.SenderName, &j.Count, &j.Badge, &j.Seq, &j.Attempts, &j.Gen)
			if err != nil {
				rows.Close()
				return err
			}
			j.Sub = sub
			jobs = append(jobs, j)
		}
		if err := closeRows(rows); err != nil {
			return err
		}
		if len(jobs) == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, qPushLease)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, j := range jobs {
			if _, err := stmt.ExecContext(ctx, leaseUntil, j.Sub.ID, j.ConversationID, j.Gen); err != nil {
				return err
			}
		}
		return nil
	})
	return jobs, err
}

// FinishPushJobs implements chat.PushStore.
func (s *Store) FinishPushJobs(ctx context.Context, results []chat.PushJobResult) error {
	if len(results) == 0 {
		return nil
	}
	return s.write(ctx, "finish push jobs", func(tx *sql.Tx) error {
		st, err := prepareAll(ctx, tx, qPushSubDelete, qPushJobRetry, qPushJobDone)
		if err != nil {
			return err
		}
		defer closeAll(st)
		for _, r := range results {
			switch {
			case r.Gone:
				_, err = st[0].ExecContext(ctx, r.SubscriptionID)
			case r.RetryAt > 0:
				_, err = st[1].ExecContext(ctx, r.RetryAt, r.SubscriptionID, r.ConversationID, r.Gen)
			default:
				_, err = st[2].ExecContext(ctx, r.SubscriptionID, r.ConversationID, r.Gen)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// prepareAll prepares queries on tx; close them with closeAll.
func prepareAll(ctx context.Context, tx *sql.Tx, queries ...string) ([]*sql.Stmt, error) {
	out := make([]*sql.Stmt, 0, len(queries))
	for _, q := range queries {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			closeAll(out)
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func closeAll(sts []*sql.Stmt) {
	for _, st := range sts {
		st.Close()
	}
}

// exists runs a probe on the read pool: does it return a row?
func (s *Store) exists(ctx context.Context, q string, args ...any) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, q, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, mapErr("push probe", err)
}

// UnreadTotal implements chat.PushStore.
func (s *Store) UnreadTotal(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, qUnreadTotal, userID).Scan(&n)
	return n, mapErr("unread total", err)
}
