package server

import (
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/metrics"
	"github.com/parley-chat/parley/internal/push"
)

// newPush builds the push service when the store has a push outbox (nil
// otherwise). The VAPID key lives in the data directory unless the
// configuration names another file.
func newPush(cfg Config, store chat.Store, reg prometheus.Registerer, log *slog.Logger) (*push.Service, error) {
	ps, ok := store.(chat.PushStore)
	if !ok {
		log.Info("push notifications are off: the store has no push outbox")
		return nil, nil
	}
	pc := cfg.Push
	if pc.VAPIDKeyFile == "" {
		pc.VAPIDKeyFile = filepath.Join(cfg.DataDir, "vapid.key")
	}
	return push.New(pc, push.Deps{Store: ps, Metrics: metrics.NewPush(reg), Logger: log.With("component", "push")})
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
