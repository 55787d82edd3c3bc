package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/proto"
)

// decodeBody reads a JSON object body into v: 400 for malformed JSON, 413
// over the body limit. Unknown fields are ignored.
func (g *Gateway) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(jsonBodyTimeout))
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		if isTimeout(err) {
			// The deadline stays: the server must not wait for the rest of
			// the body before answering, and closes the connection.
			w.Header().Set("Connection", "close")
			return fmt.Errorf("%w: request body not received within %s", chat.ErrBadRequest, jsonBodyTimeout)
		}
		_ = rc.SetReadDeadline(time.Time{})
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: request body over %d bytes", chat.ErrTooLarge, g.cfg.MaxBodyBytes)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: request body is empty; a JSON object is required", chat.ErrBadRequest)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%w: field %q must be of type %s", chat.ErrBadRequest, te.Field, te.Type)
		}
		return fmt.Errorf("%w: body is not a valid JSON object", chat.ErrBadRequest)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if isTimeout(err) {
			w.Header().Set("Connection", "close")
			return fmt.Errorf("%w: request body not received within %s", chat.ErrBadRequest, jsonBodyTimeout)
		}
		_ = rc.SetReadDeadline(time.Time{})
		return fmt.Errorf("%w: unexpected data after the JSON object", chat.ErrBadRequest)
	}
	_ = rc.SetReadDeadline(time.Time{})
	return nil
}

func (g *Gateway) logout(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if err := g.svc.Logout(r.Context(), sess); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) me(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	u, devs, err := g.svc.Me(r.Context(), sess)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	out := proto.Me{User: wireUser(u), Devices: make([]proto.Device, len(devs))}
	for i, d := range devs {
		out.Devices[i] = proto.Device{DeviceID: d.ID, DeviceName: d.Name, LastSeen: d.LastSeen, Current: d.ID == sess.DeviceID}
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) revokeDevice(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if err := g.svc.RevokeDevice(r.Context(), sess, r.PathValue("device_id")); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) user(w http.ResponseWriter, r *http.Request, _ chat.Session) {
	u, err := g.svc.User(r.Context(), r.PathValue("user_id"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireUser(u))
}

func (g *Gateway) findUsers(w http.ResponseWriter, r *http.Request, _ chat.Session) {
	name := r.URL.Query().Get("username")
	if name == "" {
		g.writeError(w, r, fmt.Errorf("%w: query parameter username is required", chat.ErrBadRequest))
		return
	}
	users := []proto.User{}
	u, err := g.svc.UserByUsername(r.Context(), name)
	switch {
	case err == nil:
		users = append(users, wireUser(u))
	case !errors.Is(err, chat.ErrNotFound):
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (g *Gateway) createConversation(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	var req proto.CreateConversationRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	switch req.Type {
	case chat.TypeDirect:
	case "":
		g.writeError(w, r, fmt.Errorf("%w: type is required", chat.ErrBadRequest))
		return
	case chat.TypeGroup:
		g.writeError(w, r, fmt.Errorf("%w: create groups with POST /api/v1/groups", chat.ErrInvalid))
		return
	default:
		g.writeError(w, r, fmt.Errorf("%w: unknown conversation type %q", chat.ErrBadRequest, req.Type))
		return
	}
	if ok, wait := g.limits.convs.Take(sess.UserID); !ok {
		g.writeError(w, r, &chat.RateLimitError{RetryAfter: wait})
		return
	}
	conv, created, err := g.svc.OpenDirect(r.Context(), sess, req.UserID)
	if !created {
		g.limits.convs.Refund(sess.UserID) // opening an existing one is free
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, wireConversation(&conv, sess.DeviceID))
}

// listConversations is GET /api/v1/conversations: every conversation, most
// recently active first (the v1 answer), or with limit= one page of at most
// limit (200 at most) after the cursor= of the previous page, with
// next_cursor while more remain.
func (g *Gateway) listConversations(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			g.writeError(w, r, fmt.Errorf("%w: limit must be an integer >= 1", chat.ErrBadRequest))
			return
		}
		limit = min(n, chat.MaxPageLimit)
	}
	convs, err := g.svc.Conversations(r.Context(), sess)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if c := q.Get("cursor"); c != "" {
		at, id, ok := parseConvCursor(c)
		if !ok {
			g.writeError(w, r, fmt.Errorf("%w: cursor is not one this server gave", chat.ErrBadRequest))
			return
		}
		i := 0
		for i < len(convs) && (convs[i].UpdatedAt > at || (convs[i].UpdatedAt == at && convs[i].ID <= id)) {
			i++
		}
		convs = convs[i:]
		if limit == 0 {
			limit = chat.MaxPageLimit
		}
	}
	next := ""
	if limit > 0 && len(convs) > limit {
		convs = convs[:limit]
		last := convs[limit-1]
		next = strconv.FormatInt(last.UpdatedAt, 10) + "." + last.ID
	}
	out := make([]proto.Conversation, len(convs))
	for i := range convs {
		out[i] = wireConversation(&convs[i], sess.DeviceID)
	}
	body := map[string]any{"conversations": out}
	if next != "" {
		body["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

// parseConvCursor reads "updated_at.conversation_id".
func parseConvCursor(c string) (int64, string, bool) {
	ms, id, ok := strings.Cut(c, ".")
	at, err := strconv.ParseInt(ms, 10, 64)
	return at, id, ok && err == nil && id != ""
}

func (g *Gateway) getConversation(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	conv, err := g.svc.Conversation(r.Context(), sess, r.PathValue("id"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireConversation(&conv, sess.DeviceID))
}

// parsePage reads before=, after= and limit= of a history query. empty is
// true for before=0: nothing lies before seq 1.
func parsePage(r *http.Request) (p chat.Page, empty bool, err error) {
	q := r.URL.Query()
	num := func(name string, min int64) (int64, bool, error) {
		s := q.Get(name)
		if s == "" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < min {
			return 0, false, fmt.Errorf("%w: %s must be an integer >= %d", chat.ErrBadRequest, name, min)
		}
		return n, true, nil
	}
	before, hasBefore, err := num("before", 0)
	if err != nil {
		return p, false, err
	}
	after, hasAfter, err := num("after", 0)
	if err != nil {
		return p, false, err
	}
	limit, _, err := num("limit", 1)
	if err != nil {
		return p, false, err
	}
	if hasBefore && hasAfter {
		return p, false, fmt.Errorf("%w: use before or after, not both", chat.ErrBadRequest)
	}
	p.Limit = int(min(limit, chat.MaxPageLimit))
	p.Before = before
	if hasAfter {
		p.After, p.Forward = after, true
	}
	return p, hasBefore && before == 0, nil
}

func (g *Gateway) messages(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	p, empty, err := parsePage(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	var msgs []chat.Message
	hasMore := false
	if empty {
		err = g.svc.CheckMember(r.Context(), sess, r.PathValue("id"))
	} else {
		msgs, hasMore, err = g.svc.History(r.Context(), sess, r.PathValue("id"), p)
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.MessagePage{Messages: wireMessages(msgs, sess.DeviceID), HasMore: hasMore})
}

func (g *Gateway) createGroup(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	var req proto.CreateGroupRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	if ok, wait := g.limits.convs.Take(sess.UserID); !ok {
		g.writeError(w, r, &chat.RateLimitError{RetryAfter: wait})
		return
	}
	conv, err := g.svc.CreateGroup(r.Context(), sess, req.Name, req.Members)
	if err != nil {
		g.limits.convs.Refund(sess.UserID)
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, wireConversation(&conv, sess.DeviceID))
}

func (g *Gateway) addMembers(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	var req proto.AddMembersRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	conv, err := g.svc.AddMembers(r.Context(), sess, r.PathValue("id"), req.UserIDs)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireConversation(&conv, sess.DeviceID))
}

func (g *Gateway) removeMember(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if err := g.svc.RemoveMember(r.Context(), sess, r.PathValue("id"), r.PathValue("user_id")); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) renameGroup(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	var req proto.RenameGroupRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.writeError(w, r, err)
		return
	}
	if req.Name == nil {
		g.writeError(w, r, fmt.Errorf("%w: name is required", chat.ErrBadRequest))
		return
	}
	conv, err := g.svc.RenameGroup(r.Context(), sess, r.PathValue("id"), *req.Name)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wireConversation(&conv, sess.DeviceID))
}
