package push

import (
	"context"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

var _ chat.Observer = (*Service)(nil)

// Committed implements chat.Observer: it hands the batch to the notifier
// and returns at once. A full queue drops the batch (counted): recipients
// still get every message through sync, only the notification is lost.
func (s *Service) Committed(results []chat.AppendResult) {
	select {
	case s.events <- results:
	default:
		s.metrics.Dropped(1)
	}
}

// WatermarksMoved implements chat.Observer, like Committed.
func (s *Service) WatermarksMoved(moved []chat.Watermark) {
	select {
	case s.reads <- moved:
	default:
		s.metrics.Dropped(1)
	}
}

// maxRecordBatch bounds the events written in one transaction.
const maxRecordBatch = 1024

// notifyLoop records notifications for recipients without a socket and
// queues clears for conversations read elsewhere. It batches whatever is
// waiting into one transaction. On stop it records what was handed over.
func (s *Service) notifyLoop() {
	defer s.loops.Done()
	var events []chat.PushEvent
	for {
		select {
		case batch := <-s.events:
			events = s.offline(events[:0], batch)
		fill:
			for len(events) < maxRecordBatch {
				select {
				case batch := <-s.events:
					events = s.offline(events, batch)
				default:
					break fill
				}
			}
			s.record(events)
		case moved := <-s.reads:
			s.clear(moved)
		case <-s.stop:
			for {
				select {
				case batch := <-s.events:
					s.record(s.offline(events[:0], batch))
				case moved := <-s.reads:
					s.clear(moved)
				default:
					return
				}
			}
		}
	}
}

// offline appends an event for every recipient of each message, other than
// its sender, none of whose devices has a socket: an active user gets no
// push at all.
func (s *Service) offline(events []chat.PushEvent, batch []chat.AppendResult) []chat.PushEvent {
	for i := range batch {
		m := &batch[i].Message
		for _, uid := range batch[i].Recipients {
			if uid == m.SenderID || s.presence.Online(uid) {
				continue
			}
			events = append(events, chat.PushEvent{UserID: uid, ConversationID: m.ConversationID, SenderID: m.SenderID, Seq: m.Seq, At: m.Timestamp})
		}
	}
	return events
}

func (s *Service) record(events []chat.PushEvent) {
	if len(events) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := s.store.RecordPushes(ctx, events)
	if err != nil {
		s.log.Warn("recording push notifications", "events", len(events), "err", err)
		return
	}
	s.metrics.Recorded(n)
	if n > 0 {
		s.poke()
	}
}

// clear queues clear pushes for conversations the user read up to what was
// notified.
func (s *Service) clear(moved []chat.Watermark) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := s.store.ClearPushes(ctx, moved, s.now().UnixMilli())
	if err != nil {
		s.log.Warn("queueing clear pushes", "receipts", len(moved), "err", err)
		return
	}
	if n > 0 {
		s.metrics.Queued(n)
		s.poke()
	}
}

// poke wakes the dispatcher without waiting.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
