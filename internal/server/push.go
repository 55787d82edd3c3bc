package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/metrics"
	"github.com/parley-chat/parley/internal/push"
	"github.com/parley-chat/parley/internal/push/pushjs"
)

// newPush builds the push service when the store has a push outbox (nil
// otherwise). The VAPID key lives in the data directory unless the
// configuration names another file. On NATS, the jobs go through the
// JetStream push queue; without JetStream they stay in the store's outbox.
func newPush(ctx context.Context, cfg Config, store chat.Store, bus chat.Bus, reg prometheus.Registerer, log *slog.Logger) (*push.Service, error) {
	ps, ok := store.(chat.PushStore)
	if !ok {
		log.Info("push notifications are off: the store has no push outbox")
		return nil, nil
	}
	pc := cfg.Push
	if pc.VAPIDKeyFile == "" {
		pc.VAPIDKeyFile = filepath.Join(cfg.DataDir, "vapid.key")
	}
	log = log.With("component", "push")
	d := push.Deps{Store: ps, Metrics: metrics.NewPush(reg), Logger: log}
	if nb, ok := bus.(*natsbus.Bus); ok {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		q, err := pushjs.Open(octx, nb, pushjs.Options{Concurrency: pc.Workers, AckWait: pc.Lease, MaxAge: pc.TTL})
		cancel()
		if err != nil {
			// Still correct, only not through JetStream: nodes that do
			// use it share the outbox with this one.
			log.Warn("no JetStream push queue; push jobs are sent from the store's outbox", "err", err)
		} else {
			d.Queue = q
			log.Info("push jobs go through JetStream", "stream", pushjs.Stream)
		}
	}
	return push.New(pc, d)
}

// startPush opens the push endpoints and starts the worker, with the
// gateway telling who has a socket on this node.
func (s *Server) startPush() {
	if s.push == nil {
		return
	}
	s.gw.SetPush(s.push)
	s.push.Start(s.gw)
	s.log.Info("push notifications", "platforms", s.push.Platforms(), "window", s.cfg.Push.Window)
	if s.cfg.Push.VAPIDSubject == "" {
		s.log.Info("no --vapid-subject set: Apple's Web Push service refuses pushes without a contact (mailto: or https:)")
	}
}

// stopPush records what the chat service handed over last and stops the
// worker; the outbox keeps the rest for the next start.
func (s *Server) stopPush() {
	if s.push != nil {
		s.push.Close()
	}
}
