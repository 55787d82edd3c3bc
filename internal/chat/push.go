package chat

import (
	"context"
	"errors"
)

// Observer learns, after the fact, what the service committed: new messages
// and receipt watermarks that moved. It is how side work that must never
// slow the hot path (push notifications) hears about it. Both methods are
// called from the service's own goroutines and must return at once: hand
// the work off, never wait. The slices must not be modified.
type Observer interface {
	// Committed is called with each batch of newly stored messages (no
	// duplicates), in commit order, after they were published.
	Committed(results []AppendResult)
	// WatermarksMoved is called with the watermarks that moved, with their
	// new values, after they were stored.
	WatermarksMoved(moved []Watermark)
}

// Push platforms a subscription can name.
const (
	PlatformWebPush     = "webpush"
	PlatformAPNs        = "apns"
	PlatformFCM         = "fcm"
	PlatformUnifiedPush = "unifiedpush"
)

// Push job kinds.
const (
	PushAlert = "alert" // "Alice sent you 5 messages", with the badge
	PushClear = "clear" // no alert: the conversation was read elsewhere; badge only
)

// PushSubscription is where one device wants its notifications sent.
type PushSubscription struct {
	ID       string
	UserID   string
	DeviceID string
	Platform string
	// Endpoint is the push URL (webpush, unifiedpush) or the device
	// registration token (apns, fcm).
	Endpoint string
	// P256dh and Auth are the RFC 8291 keys of the receiving user agent
	// (webpush; optional for unifiedpush): an uncompressed P-256 point of
	// 65 bytes and a 16-byte authentication secret.
	P256dh    []byte
	Auth      []byte
	CreatedAt int64
}

// PushEvent is one new message for a recipient none of whose devices had an
// open socket.
type PushEvent struct {
	UserID         string
	ConversationID string
	SenderID       string
	Seq            int64
	At             int64 // ms
}

// PushJob is one notification for one subscription, queued in the outbox.
// Jobs are keyed by (subscription, conversation): a newer notification for
// the same conversation replaces an unsent older one (Gen grows).
type PushJob struct {
	Sub            PushSubscription
	ConversationID string
	Kind           string // PushAlert or PushClear
	SenderName     string // the last sender's display name (alerts)
	Count          int64  // messages the alert stands for
	Badge          int64  // the user's total unread count when queued
	Seq            int64  // the newest seq it covers
	Attempts       int    // failed attempts so far
	Gen            int64
}

// PushJobResult finishes a claimed job: sent or given up (delete it),
// retry later (RetryAt, ms), or the subscription is gone (delete it with
// all its jobs). A result whose Gen no longer matches changes nothing but
// Gone.
type PushJobResult struct {
	SubscriptionID string
	ConversationID string
	Gen            int64
	RetryAt        int64 // 0: finished
	Gone           bool
}

// PushStore is the push outbox and the subscriptions it serves. It is an
// optional ability of a Store, found by type assertion; without it the
// server offers no push.
//
// The outbox has two levels. A pending row per (user, conversation) counts
// the messages that arrived while the user had no open socket and remembers
// the last sender; it is due when it counts more than it last notified and
// its window has passed. QueueDuePushes turns due rows into one job per
// subscription of the user, the worker claims and sends jobs, and finishes
// them. Everything survives a restart.
type PushStore interface {
	// SavePushSubscription stores a subscription and returns it as stored.
	// The same (platform, endpoint) subscribed again by the same device
	// keeps its id (keys are updated); by another device or user it moves
	// there (the old one is deleted). ErrInvalid when the device would have
	// more than maxPerDevice subscriptions.
	SavePushSubscription(ctx context.Context, s PushSubscription, maxPerDevice int) (PushSubscription, error)
	// DeletePushSubscription deletes one of userID's subscriptions with its
	// jobs; ErrNotFound if there is none with that id for that user.
	DeletePushSubscription(ctx context.Context, userID, id string) error
	// DeleteDevicePushSubscriptions deletes a device's subscriptions
	// (logout, revocation).
	DeleteDevicePushSubscriptions(ctx context.Context, deviceID string) error
	// PushSubscriptions lists a user's subscriptions, oldest first.
	PushSubscriptions(ctx context.Context, userID string) ([]PushSubscription, error)

	// RecordPushes adds events to the pending rows of their (user,
	// conversation), in one transaction: a new row counts 1 and is due at
	// once; an existing one counts one more, takes the sender and keeps its
	// due time. Users without any subscription are skipped. It returns how
	// many events were recorded.
	RecordPushes(ctx context.Context, events []PushEvent) (int, error)
	// QueueDuePushes turns up to limit due pending rows (counting more than
	// they notified, due at or before now) into alert jobs, one per
	// subscription of the user, due now, carrying the count, the last
	// sender's display name and the user's unread total; each row then
	// counts as notified and is next due at now+window. It returns the
	// number of jobs queued.
	QueueDuePushes(ctx context.Context, now, window int64, limit int) (int, error)
	// ClearPushes handles read watermarks: the pending row of each (user,
	// conversation) read up to its last seq is reset to count nothing
	// (keeping its window), and if it had notified, a clear job carrying
	// the user's unread total is queued for each subscription of the user.
	// It returns the number of jobs queued.
	ClearPushes(ctx context.Context, read []Watermark, now int64) (int, error)
	// ClaimPushJobs returns up to limit jobs due at or before now, oldest
	// first, with their subscriptions, and leases them: they are due again
	// at leaseUntil unless finished before (a crash mid-send sends again).
	ClaimPushJobs(ctx context.Context, now, leaseUntil int64, limit int) ([]PushJob, error)
	// FinishPushJobs applies results in one transaction.
	FinishPushJobs(ctx context.Context, results []PushJobResult) error
	// UnreadTotal is the user's unread count summed over its conversations
	// (Store.UnreadCount of each): the badge.
	UnreadTotal(ctx context.Context, userID string) (int64, error)
}

// forgetPushSubscriptions drops a device's push subscriptions; failures are
// logged, since the session is already gone.
func (s *Service) forgetPushSubscriptions(ctx context.Context, deviceID string) {
	if s.pushes == nil {
		return
	}
	if err := s.pushes.DeleteDevicePushSubscriptions(ctx, deviceID); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("removing push subscriptions", "device", deviceID, "err", err)
	}
}
