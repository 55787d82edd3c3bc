package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxResponseBody bounds a successful JSON answer (a history page of 200
// messages of 64 KiB each fits).
const maxResponseBody = 64 << 20

// Register creates an account (POST /api/v1/auth/register). displayName may
// be empty. baseURL may list a cluster's nodes, comma-separated: a node that
// cannot be reached is passed over for the next.
func Register(ctx context.Context, baseURL, username, password, displayName string) (User, error) {
	body := map[string]string{"username": username, "password": password}
	if displayName != "" {
		body["display_name"] = displayName
	}
	var u User
	err := eachReachable(strings.Split(baseURL, ","), 0, func(base string) error {
		return doJSON(ctx, http.DefaultClient, http.MethodPost, endpoint(base, "/auth/register"), "", body, &u)
	})
	return u, err
}

// Login opens a session (POST /api/v1/auth/login) and returns its token.
// baseURL may list a cluster's nodes, as for Register.
func Login(ctx context.Context, baseURL string, req LoginRequest) (Session, error) {
	var s Session
	err := eachReachable(strings.Split(baseURL, ","), 0, func(base string) error {
		return doJSON(ctx, http.DefaultClient, http.MethodPost, endpoint(base, "/auth/login"), "", req, &s)
	})
	return s, err
}

// eachReachable calls f with the URLs in turn, starting at urls[first],
// until one can be reached: it moves on only when f's request could not
// connect at all (so it never reached a server and is safe to repeat
// elsewhere, whatever its method).
func eachReachable(urls []string, first int, f func(base string) error) error {
	var err error
	for i := range urls {
		base := strings.TrimSpace(urls[(first+i)%len(urls)])
		if err = f(base); !unreachable(err) {
			return err
		}
	}
	return err
}

// unreachable says whether err is a failure to connect (refused, no route,
// unknown host): the request was never sent.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// NormalizeURL turns "host:port" or "http://host:port/" into a base URL
// without a trailing slash ("http://host:port").
func NormalizeURL(base string) string {
	base = strings.TrimSpace(base)
	if base == "" {
		return ""
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimRight(base, "/")
	base = strings.TrimSuffix(base, "/api/v1")
	return base
}

// endpoint joins a base URL and a path under /api/v1.
func endpoint(base, path string) string {
	return NormalizeURL(base) + "/api/v1" + path
}

// wsURL maps a base URL to its WebSocket endpoint.
func wsURL(base string) (string, error) {
	u, err := url.Parse(NormalizeURL(base))
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("parley: unsupported URL scheme %q", u.Scheme)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/api/v1/ws"
	return u.String(), nil
}

// doJSON sends in (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil). A non-2xx answer is returned as an *APIError.
func doJSON(ctx context.Context, hc *http.Client, method, u, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("parley: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("parley: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("parley: %s %s: %w", method, u, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeHTTPError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("parley: decode %s %s answer: %w", method, u, err)
	}
	return nil
}

// rest performs an authenticated call against the client's current server,
// or, when that one cannot be reached, the next of its URLs that can.
func (c *Client) rest(ctx context.Context, method, path string, in, out any) error {
	c.mu.Lock()
	urls, first := c.urls, c.urlIdx%len(c.urls)
	c.mu.Unlock()
	return eachReachable(urls, first, func(base string) error {
		return doJSON(ctx, c.hc, method, endpoint(base, path), c.token, in, out)
	})
}

// Me returns the caller's account and devices (GET /api/v1/users/me).
func (c *Client) Me(ctx context.Context) (Account, error) {
	var a Account
	err := c.rest(ctx, http.MethodGet, "/users/me", nil, &a)
	return a, err
}

// User returns a user by id (GET /api/v1/users/{id}).
func (c *Client) User(ctx context.Context, userID string) (User, error) {
	var u User
	err := c.rest(ctx, http.MethodGet, "/users/"+url.PathEscape(userID), nil, &u)
	return u, err
}

// UserByUsername looks a user up by exact username (GET
// /api/v1/users?username=X). No match is an *APIError with status 404.
func (c *Client) UserByUsername(ctx context.Context, username string) (User, error) {
	var r struct {
		Users []User `json:"users"`
	}
	if err := c.rest(ctx, http.MethodGet, "/users?username="+url.QueryEscape(username), nil, &r); err != nil {
		return User{}, err
	}
	for _, u := range r.Users {
		if u.Username == username {
			return u, nil
		}
	}
	if len(r.Users) > 0 {
		return r.Users[0], nil
	}
	return User{}, &APIError{Status: 404, Code: "not_found", Message: fmt.Sprintf("no user named %q", username)}
}

// Logout revokes the client's token (POST /api/v1/auth/logout). A running
// Run then ends with a session-expired error.
func (c *Client) Logout(ctx context.Context) error {
	return c.rest(ctx, http.MethodPost, "/auth/logout", nil, nil)
}

// CreateDirect opens (or returns the existing) direct conversation with a
// user (POST /api/v1/conversations).
func (c *Client) CreateDirect(ctx context.Context, userID string) (Conversation, error) {
	var conv Conversation
	err := c.rest(ctx, http.MethodPost, "/conversations", map[string]string{"type": TypeDirect, "user_id": userID}, &conv)
	return conv, err
}

// Conversations lists the caller's conversations, most recently active first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var r struct {
		Conversations []Conversation `json:"conversations"`
	}
	err := c.rest(ctx, http.MethodGet, "/conversations", nil, &r)
	return r.Conversations, err
}

// Conversation returns one conversation with its members.
func (c *Client) Conversation(ctx context.Context, id string) (Conversation, error) {
	var conv Conversation
	err := c.rest(ctx, http.MethodGet, "/conversations/"+url.PathEscape(id), nil, &conv)
	return conv, err
}

// History returns a page of a conversation's messages; see HistoryQuery for
// the order.
func (c *Client) History(ctx context.Context, id string, q HistoryQuery) (HistoryPage, error) {
	v := url.Values{}
	switch {
	case q.Before > 0:
		v.Set("before", strconv.FormatInt(q.Before, 10))
	case q.After > 0 || q.Forward:
		v.Set("after", strconv.FormatInt(max(q.After, 0), 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/conversations/" + url.PathEscape(id) + "/messages"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var p HistoryPage
	err := c.rest(ctx, http.MethodGet, path, nil, &p)
	if p.Messages == nil {
		p.Messages = []Message{}
	}
	return p, err
}

// CreateGroup creates a group with the caller as admin (POST /api/v1/groups).
func (c *Client) CreateGroup(ctx context.Context, name string, memberIDs []string) (Conversation, error) {
	if memberIDs == nil {
		memberIDs = []string{}
	}
	var conv Conversation
	err := c.rest(ctx, http.MethodPost, "/groups", map[string]any{"name": name, "members": memberIDs}, &conv)
	return conv, err
}

// AddMembers adds users to a group (admins only).
func (c *Client) AddMembers(ctx context.Context, groupID string, userIDs ...string) (Conversation, error) {
	if userIDs == nil {
		userIDs = []string{}
	}
	var conv Conversation
	err := c.rest(ctx, http.MethodPost, "/groups/"+url.PathEscape(groupID)+"/members", map[string]any{"user_ids": userIDs}, &conv)
	return conv, err
}

// RemoveMember removes a user from a group: an admin removes anyone, a member
// removes itself (leaves).
func (c *Client) RemoveMember(ctx context.Context, groupID, userID string) error {
	return c.rest(ctx, http.MethodDelete, "/groups/"+url.PathEscape(groupID)+"/members/"+url.PathEscape(userID), nil, nil)
}

// RenameGroup renames a group (admins only).
func (c *Client) RenameGroup(ctx context.Context, groupID, name string) (Conversation, error) {
	var conv Conversation
	err := c.rest(ctx, http.MethodPatch, "/groups/"+url.PathEscape(groupID), map[string]string{"name": name}, &conv)
	return conv, err
}
