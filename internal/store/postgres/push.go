package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.PushStore = (*Store)(nil)

// Push queries, kept as constants so the query-plan test can check them.
const (
	pushSubCols = `s.id, s.user_id, s.device_id, s.platform, s.endpoint, s.p256dh, s.auth, s.created_at`

	// qPushDeviceLock serializes subscription changes of one device (the
	// per-device limit), across nodes, for the rest of the transaction.
	qPushDeviceLock    = `SELECT pg_advisory_xact_lock(hashtextextended('parley/push/' || $1::text, 0))`
	qPushSubByEndpoint = `SELECT id, device_id, user_id, created_at FROM push_subscriptions
		WHERE platform = $1 AND endpoint = $2 FOR UPDATE`
	qPushSubsOfDevice = `SELECT count(*) FROM push_subscriptions WHERE device_id = $1`
	qPushSubInsert    = `INSERT INTO push_subscriptions (id, user_id, device_id, platform, endpoint, p256dh, auth, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	qPushSubKeys    = `UPDATE push_subscriptions SET p256dh = $2, auth = $3 WHERE id = $1`
	qPushSubsOfUser = `SELECT ` + pushSubCols + ` FROM push_subscriptions s WHERE s.user_id = $1 ORDER BY s.created_at, s.ord`
	qPushSubDelete  = `DELETE FROM push_subscriptions WHERE id = $1`

	// Which of these users have a subscription at all (most have none).
	qPushUsersWithSubs = `SELECT DISTINCT user_id FROM push_subscriptions WHERE user_id = ANY ($1::text[])`

	// A new pending row for a user with at least one subscription, or one
	// more message on the existing row (the due time stays: the window).
	qPushRecord = `INSERT INTO push_pending AS p (user_id, conversation_id, count, notified, sender_id, last_seq, due_at, updated_at)
		SELECT $1::text, $2::text, 1, 0, $3::text, $4::bigint, $5::bigint, $5::bigint
		WHERE EXISTS (SELECT 1 FROM push_subscriptions WHERE user_id = $1::text)
		ON CONFLICT (user_id, conversation_id) DO UPDATE SET
			count = p.count + 1, sender_id = excluded.sender_id,
			last_seq = greatest(p.last_seq, excluded.last_seq), updated_at = excluded.updated_at`

	// Cheap probes, so that an idle poll starts no transaction.
	qPushAnyDuePending = `SELECT EXISTS (SELECT 1 FROM push_pending WHERE count > notified AND due_at <= $1)`
	qPushAnyDueJob     = `SELECT EXISTS (SELECT 1 FROM push_jobs WHERE due_at <= $1)`

	// Due rows, locked; rows another node is queueing are skipped.
	qPushDuePending = `SELECT p.user_id, p.conversation_id, p.count, p.last_seq, coalesce(u.display_name, '')
		FROM push_pending p LEFT JOIN users u ON u.id = p.sender_id
		WHERE p.count > p.notified AND p.due_at <= $1
		ORDER BY p.due_at LIMIT $2
		FOR UPDATE OF p SKIP LOCKED`
	qPushNotified = `UPDATE push_pending SET notified = count, due_at = $3 WHERE user_id = $1 AND conversation_id = $2`

	// One job per subscription of the user; a job already queued for the
	// same conversation is replaced (and its generation bumped).
	qPushQueueJobs = `INSERT INTO push_jobs AS j (subscription_id, conversation_id, kind, sender_name, count, badge, seq, attempts, due_at, gen)
		SELECT s.id, $2::text, $3::text, $4::text, $5::bigint, $6::bigint, $7::bigint, 0, $8::bigint, 1
		FROM push_subscriptions s WHERE s.user_id = $1::text
		ON CONFLICT (subscription_id, conversation_id) DO UPDATE SET
			kind = excluded.kind, sender_name = excluded.sender_name, count = excluded.count,
			badge = excluded.badge, seq = excluded.seq, attempts = 0, due_at = excluded.due_at, gen = j.gen + 1`

	qPushPendingOf     = `SELECT count, notified, last_seq FROM push_pending WHERE user_id = $1 AND conversation_id = $2`
	qPushPendingLocked = qPushPendingOf + ` FOR UPDATE`
	qPushReset         = `UPDATE push_pending SET count = 0, notified = 0, updated_at = $3 WHERE user_id = $1 AND conversation_id = $2`

	// Claim: the oldest due jobs not held by another claim (SKIP LOCKED),
	// leased by moving due_at to the end of the lease, in one statement.
	qPushClaim = `WITH due AS (
			SELECT subscription_id, conversation_id, due_at FROM push_jobs
			WHERE due_at <= $1 ORDER BY due_at LIMIT $2
			FOR UPDATE SKIP LOCKED
		), leased AS (
			UPDATE push_jobs j SET due_at = $3 FROM due
			WHERE j.subscription_id = due.subscription_id AND j.conversation_id = due.conversation_id
			RETURNING j.subscription_id, j.conversation_id, j.kind, j.sender_name, j.count, j.badge, j.seq,
			          j.attempts, j.gen, due.due_at AS was_due
		)
		SELECT ` + pushSubCols + `, l.conversation_id, l.kind, l.sender_name, l.count, l.badge, l.seq, l.attempts, l.gen
		FROM leased l JOIN push_subscriptions s ON s.id = l.subscription_id
		ORDER BY l.was_due, l.subscription_id, l.conversation_id`
	qPushJobDone  = `DELETE FROM push_jobs WHERE subscription_id = $1 AND conversation_id = $2 AND gen = $3`
	qPushJobRetry = `UPDATE push_jobs SET due_at = $4, attempts = attempts + 1 WHERE subscription_id = $1 AND conversation_id = $2 AND gen = $3`

	// Store.UnreadCount summed over the user's conversations: each a short
	// range of one conversation's messages_by_sender.
	qUnreadTotal = `SELECT coalesce(sum(greatest(c.last_seq - me.read_seq -
		(SELECT count(*) FROM messages o
		  WHERE o.conversation_id = c.id AND o.sender_id = me.user_id AND o.seq > me.read_seq), 0)), 0)::bigint
		FROM members me JOIN conversations c ON c.id = me.conversation_id
		WHERE me.user_id = $1`
)

// SavePushSubscription implements chat.PushStore.
func (s *Store) SavePushSubscription(ctx context.Context, sub chat.PushSubscription, maxPerDevice int) (chat.PushSubscription, error) {
	if !validKeys(sub.DeviceID, sub.UserID) {
		return chat.PushSubscription{}, fmt.Errorf("postgres: save push subscription: %w", chat.ErrNotFound)
	}
	out := sub
	err := s.write(ctx, "save push subscription", func(tx pgx.Tx) error {
		out = sub
		if _, err := tx.Exec(ctx, qPushDeviceLock, sub.DeviceID); err != nil {
			return err
		}
		var id, device, user string
		var created int64
		err := tx.QueryRow(ctx, qPushSubByEndpoint, sub.Platform, sub.Endpoint).Scan(&id, &device, &user, &created)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case device == sub.DeviceID && user == sub.UserID:
			// The same device subscribing again (every app start does):
			// keep the id, take the keys.
			out.ID, out.CreatedAt = id, created
			_, err := tx.Exec(ctx, qPushSubKeys, id, sub.P256dh, sub.Auth)
			return err
		default:
			// The endpoint now belongs to another device (a shared browser,
			// a reinstall): it must stop notifying the old one.
			if _, err := tx.Exec(ctx, qPushSubDelete, id); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRow(ctx, qPushSubsOfDevice, sub.DeviceID).Scan(&n); err != nil {
			return err
		}
		if n >= maxPerDevice {
			return fmt.Errorf("postgres: save push subscription: %w: a device may have at most %d push subscriptions", chat.ErrInvalid, maxPerDevice)
		}
		_, err = tx.Exec(ctx, qPushSubInsert, sub.ID, sub.UserID, sub.DeviceID, sub.Platform, sub.Endpoint,
			sub.P256dh, sub.Auth, sub.CreatedAt)
		return err
	})
	if err != nil {
		return chat.PushSubscription{}, err
	}
	return out, nil
}

// DeletePushSubscription implements chat.PushStore; its jobs go with it.
func (s *Store) DeletePushSubscription(ctx context.Context, userID, id string) error {
	op := fmt.Sprintf("delete push subscription %q", id)
	if !validKeys(userID, id) {
		return fmt.Errorf("postgres: %s: %w", op, chat.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2`, id, userID)
	return rowsAffectedOne(op, tag, err)
}

// DeleteDevicePushSubscriptions implements chat.PushStore.
func (s *Store) DeleteDevicePushSubscriptions(ctx context.Context, deviceID string) error {
	if !validKeys(deviceID) {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM push_subscriptions WHERE device_id = $1`, deviceID)
	return mapErr("delete device push subscriptions", err)
}

func scanPushSub(row pgx.Row, extra ...any) (chat.PushSubscription, error) {
	var p chat.PushSubscription
	err := row.Scan(append([]any{&p.ID, &p.UserID, &p.DeviceID, &p.Platform, &p.Endpoint, &p.P256dh, &p.Auth, &p.CreatedAt}, extra...)...)
	return p, err
}

// PushSubscriptions implements chat.PushStore.
func (s *Store) PushSubscriptions(ctx context.Context, userID string) ([]chat.PushSubscription, error) {
	if !validKeys(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, qPushSubsOfUser, userID)
	if err != nil {
		return nil, mapErr("push subscriptions", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.PushSubscription, error) { return scanPushSub(row) })
	return out, mapErr("push subscriptions", err)
}

// RecordPushes implements chat.PushStore. Most recipients have no
// subscription: one lookup outside any transaction drops them first. The
// rest are written in one transaction, one statement per event, in
// (user, conversation) order (events of one row keep their order), so that
// concurrent calls lock rows in the same order.
func (s *Store) RecordPushes(ctx context.Context, events []chat.PushEvent) (int, error) {
	var users []string
	for _, e := range events {
		if validKeys(e.UserID, e.ConversationID, e.SenderID) {
			users = append(users, e.UserID)
		}
	}
	if len(users) == 0 {
		return 0, nil
	}
	slices.Sort(users)
	users = slices.Compact(users)
	rows, err := s.pool.Query(ctx, qPushUsersWithSubs, users)
	if err != nil {
		return 0, mapErr("record pushes", err)
	}
	withSubs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, mapErr("record pushes", err)
	}
	has := make(map[string]bool, len(withSubs))
	for _, u := range withSubs {
		has[u] = true
	}
	var kept []chat.PushEvent
	for _, e := range events {
		if has[e.UserID] && validKeys(e.ConversationID, e.SenderID) {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return 0, nil
	}
	slices.SortStableFunc(kept, func(a, b chat.PushEvent) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.ConversationID, b.ConversationID))
	})
	recorded := 0
	err = s.write(ctx, "record pushes", func(tx pgx.Tx) error {
		recorded = 0
		b := &pgx.Batch{}
		for _, e := range kept {
			b.Queue(qPushRecord, e.UserID, e.ConversationID, e.SenderID, e.Seq, e.At)
		}
		br := tx.SendBatch(ctx, b)
		var err error
		for range kept {
			var tag pgconn.CommandTag
			if tag, err = br.Exec(); err != nil {
				break
			}
			if tag.RowsAffected() > 0 {
				recorded++
			}
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	return recorded, err
}

// probe runs a SELECT EXISTS (...) outside any transaction.
func (s *Store) probe(ctx context.Context, q string, args ...any) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, q, args...).Scan(&ok)
	return ok, mapErr("push probe", err)
}

// QueueDuePushes implements chat.PushStore. The due rows are locked FOR
// UPDATE SKIP LOCKED, so nodes polling together queue disjoint rows.
func (s *Store) QueueDuePushes(ctx context.Context, now, window int64, limit int) (int, error) {
	if due, err := s.probe(ctx, qPushAnyDuePending, now); err != nil || !due {
		return 0, err
	}
	if limit <= 0 {
		limit = 100
	}
	queued := 0
	err := s.write(ctx, "queue due pushes", func(tx pgx.Tx) error {
		queued = 0
		type due struct {
			user, conv, sender string
			count, seq         int64
		}
		rows, err := tx.Query(ctx, qPushDuePending, now, limit)
		if err != nil {
			return err
		}
		dues, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (due, error) {
			var d due
			err := row.Scan(&d.user, &d.conv, &d.count, &d.seq, &d.sender)
			return d, err
		})
		if err != nil {
			return err
		}
		badges := map[string]int64{}
		for _, d := range dues {
			badge, ok := badges[d.user]
			if !ok {
				if err := tx.QueryRow(ctx, qUnreadTotal, d.user).Scan(&badge); err != nil {
					return err
				}
				badges[d.user] = badge
			}
			tag, err := tx.Exec(ctx, qPushQueueJobs, d.user, d.conv, chat.PushAlert, d.sender, d.count, badge, d.seq, now)
			if err != nil {
				return err
			}
			queued += int(tag.RowsAffected())
			if _, err := tx.Exec(ctx, qPushNotified, d.user, d.conv, now+window); err != nil {
				return err
			}
		}
		return nil
	})
	return queued, err
}

// ClearPushes implements chat.PushStore. Most receipts concern
// conversations with nothing pending: they are looked up outside any
// transaction first, and only the rest are checked again under the row
// lock and cleared.
func (s *Store) ClearPushes(ctx context.Context, read []chat.Watermark, now int64) (int, error) {
	var cleared []chat.Watermark
	for _, w := range read {
		if !validKeys(w.UserID, w.ConversationID) {
			continue
		}
		ok, _, err := readUpToPending(ctx, s.pool, qPushPendingOf, w)
		if err != nil {
			return 0, mapErr("clear pushes", err)
		}
		if ok {
			cleared = append(cleared, w)
		}
	}
	if len(cleared) == 0 {
		return 0, nil
	}
	slices.SortStableFunc(cleared, func(a, b chat.Watermark) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.ConversationID, b.ConversationID))
	})
	queued := 0
	err := s.write(ctx, "clear pushes", func(tx pgx.Tx) error {
		queued = 0
		for _, w := range cleared {
			ok, notified, err := readUpToPending(ctx, tx, qPushPendingLocked, w)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := tx.Exec(ctx, qPushReset, w.UserID, w.ConversationID, now); err != nil {
				return err
			}
			if notified == 0 {
				continue // nothing was shown, nothing to clear
			}
			var badge int64
			if err := tx.QueryRow(ctx, qUnreadTotal, w.UserID).Scan(&badge); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, qPushQueueJobs, w.UserID, w.ConversationID, chat.PushClear, "", int64(0), badge, w.ReadSeq, now)
			if err != nil {
				return err
			}
			queued += int(tag.RowsAffected())
		}
		return nil
	})
	return queued, err
}

// readUpToPending says whether w reads its (user, conversation)'s pending
// row up to its last seq while the row counts something, and how many
// messages the row last notified.
func readUpToPending(ctx context.Context, q querier, query string, w chat.Watermark) (ok bool, notified int64, err error) {
	var count, lastSeq int64
	err = q.QueryRow(ctx, query, w.UserID, w.ConversationID).Scan(&count, &notified, &lastSeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, err
	}
	return count > 0 && w.ReadSeq >= lastSeq, notified, nil
}

// ClaimPushJobs implements chat.PushStore: one statement that locks the
// oldest due jobs no other claim holds (FOR UPDATE SKIP LOCKED) and leases
// them, so nodes claiming together never get the same job.
func (s *Store) ClaimPushJobs(ctx context.Context, now, leaseUntil int64, limit int) ([]chat.PushJob, error) {
	if due, err := s.probe(ctx, qPushAnyDueJob, now); err != nil || !due {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	var jobs []chat.PushJob
	err := retry(ctx, func() error {
		rows, err := s.pool.Query(ctx, qPushClaim, now, limit, leaseUntil)
		if err != nil {
			return err
		}
		jobs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (chat.PushJob, error) {
			var j chat.PushJob
			sub, err := scanPushSub(row, &j.ConversationID, &j.Kind, &j.SenderName, &j.Count, &j.Badge, &j.Seq, &j.Attempts, &j.Gen)
			j.Sub = sub
			return j, err
		})
		return err
	})
	if err != nil {
		return nil, mapErr("claim push jobs", err)
	}
	return jobs, nil
}

// FinishPushJobs implements chat.PushStore: one transaction, one pipeline.
func (s *Store) FinishPushJobs(ctx context.Context, results []chat.PushJobResult) error {
	var rs []chat.PushJobResult
	for _, r := range results {
		if validKeys(r.SubscriptionID, r.ConversationID) {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	// A fixed order, so that concurrent calls cannot deadlock on each other.
	slices.SortStableFunc(rs, func(a, b chat.PushJobResult) int {
		return cmp.Or(cmp.Compare(a.SubscriptionID, b.SubscriptionID), cmp.Compare(a.ConversationID, b.ConversationID))
	})
	return s.write(ctx, "finish push jobs", func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, r := range rs {
			switch {
			case r.Gone:
				b.Queue(qPushSubDelete, r.SubscriptionID)
			case r.RetryAt > 0:
				b.Queue(qPushJobRetry, r.SubscriptionID, r.ConversationID, r.Gen, r.RetryAt)
			default:
				b.Queue(qPushJobDone, r.SubscriptionID, r.ConversationID, r.Gen)
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

// UnreadTotal implements chat.PushStore.
func (s *Store) UnreadTotal(ctx context.Context, userID string) (int64, error) {
	if !validKeys(userID) {
		return 0, nil
	}
	var n int64
	err := s.pool.QueryRow(ctx, qUnreadTotal, userID).Scan(&n)
	return n, mapErr("unread total", err)
}
