package gateway

import (
	"fmt"
	"net/http"

	"github.com/parley-chat/parley/internal/chat"
)

// Safety endpoints (PROTOCOL.md section 11): blocks and reports.
func (g *Gateway) registerSafety(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/users/me/blocks", g.authed(g.block))
	mux.HandleFunc("DELETE /api/v1/users/me/blocks/{user_id}", g.authed(g.unblock))
	mux.HandleFunc("GET /api/v1/users/me/blocks", g.authed(g.listBlocks))
	mux.HandleFunc("POST /api/v1/reports", g.authed(g.report))
}

func (g *Gateway) block(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.svc.Block(r.Context(), sess, req.UserID); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) unblock(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if err := g.svc.Unblock(r.Context(), sess, r.PathValue("user_id")); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) listBlocks(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	ids, err := g.svc.Blocks(r.Context(), sess)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_ids": ids})
}

func (g *Gateway) report(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	var req struct {
		ConversationID string `json:"conversation_id"`
		Seq            *int64 `json:"seq"`
		Reason         string `json:"reason"`
	}
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	if req.Seq == nil {
		g.writeError(w, r, fmt.Errorf("%w: seq is required", chat.ErrBadRequest))
		return
	}
	id, err := g.svc.Report(r.Context(), sess, req.ConversationID, *req.Seq, req.Reason)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"report_id": id})
}
