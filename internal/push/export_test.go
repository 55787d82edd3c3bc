package push

import (
	"context"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Outcome is a send attempt's outcome as the external tests see it.
type Outcome struct {
	Verdict    string // one of the Outcome* labels but skipped
	RetryAfter time.Duration
	Status     int
	Reason     string
}

// SendNow sends n to sub with the platform's sender, as the worker would.
func (s *Service) SendNow(ctx context.Context, sub chat.PushSubscription, n Notification) Outcome {
	r := s.senders[sub.Platform].send(ctx, &sub, &n)
	return Outcome{Verdict: r.label(), RetryAfter: r.retryAfter, Status: r.status, Reason: r.reason}
}

// NotificationFor exposes the payload a job becomes.
func NotificationFor(j chat.PushJob) Notification { return notificationFor(&j) }
