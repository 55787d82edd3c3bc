package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// Pusher is the push subsystem as the push endpoints need it;
// internal/push implements it.
type Pusher interface {
	// Subscribe binds a subscription to the caller's device.
	Subscribe(ctx context.Context, sess chat.Session, req proto.PushSubscribeRequest) (chat.PushSubscription, error)
	// Unsubscribe deletes one of the caller's subscriptions.
	Unsubscribe(ctx context.Context, sess chat.Session, id string) error
	// VAPIDPublicKey is the application server key for Web Push.
	VAPIDPublicKey() string
}

// SetPush enables the push endpoints; without it they say push is not
// available on this server.
func (g *Gateway) SetPush(p Pusher) { g.push = p }

const noPush = "push notifications are not available on this server"

func (g *Gateway) registerPush(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/push/subscriptions", g.authed(g.subscribePush))
	mux.HandleFunc("DELETE /api/v1/push/subscriptions/{id}", g.authed(g.unsubscribePush))
	mux.HandleFunc("GET /api/v1/push/vapid-public-key", g.authed(g.vapidKey))
}

func (g *Gateway) subscribePush(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if g.push == nil {
		g.writeError(w, r, fmt.Errorf("%w: %s", chat.ErrInvalid, noPush))
		return
	}
	var req proto.PushSubscribeRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	sub, err := g.push.Subscribe(r.Context(), sess, req)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, proto.PushSubscribed{SubscriptionID: sub.ID})
}

func (g *Gateway) unsubscribePush(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if g.push == nil {
		g.writeError(w, r, fmt.Errorf("%w: %s", chat.ErrNotFound, noPush))
		return
	}
	if err := g.push.Unsubscribe(r.Context(), sess, r.PathValue("id")); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) vapidKey(w http.ResponseWriter, r *http.Request, _ chat.Session) {
	if g.push == nil {
		g.writeError(w, r, fmt.Errorf("%w: %s", chat.ErrNotFound, noPush))
		return
	}
	writeJSON(w, http.StatusOK, proto.VAPIDKey{Key: g.push.VAPIDPublicKey()})
}
