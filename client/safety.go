package client

import (
	"context"
	"net/http"
	"net/url"
)

// Block blocks a user (POST /api/v1/users/me/blocks): no direct
// conversation, messages, presence or typing between you from then on.
func (c *Client) Block(ctx context.Context, userID string) error {
	return c.rest(ctx, http.MethodPost, "/users/me/blocks", map[string]string{"user_id": userID}, nil)
}

// Unblock lifts a block (DELETE /api/v1/users/me/blocks/{user_id}).
func (c *Client) Unblock(ctx context.Context, userID string) error {
	return c.rest(ctx, http.MethodDelete, "/users/me/blocks/"+url.PathEscape(userID), nil, nil)
}

// Blocks lists the ids of the users you block (GET /api/v1/users/me/blocks).
func (c *Client) Blocks(ctx context.Context) ([]string, error) {
	var r struct {
		UserIDs []string `json:"user_ids"`
	}
	err := c.rest(ctx, http.MethodGet, "/users/me/blocks", nil, &r)
	return r.UserIDs, err
}

// Report reports message seq of a conversation to the server's operators
// (POST /api/v1/reports) and returns the report's id.
func (c *Client) Report(ctx context.Context, conversationID string, seq int64, reason string) (string, error) {
	var r struct {
		ReportID string `json:"report_id"`
	}
	err := c.rest(ctx, http.MethodPost, "/reports", map[string]any{"conversation_id": conversationID, "seq": seq, "reason": reason}, &r)
	return r.ReportID, err
}
