package natsbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/internal/chat"
)

// DefaultNodesBucket is the KV bucket of the node directory.
const DefaultNodesBucket = "parley_nodes"

// Nodes is the cluster's node directory on a JetStream KV bucket: node id
// → the URL at which the other nodes reach it. Entries expire after the
// TTL unless refreshed, like sessions, so a dead node drops out by itself.
type Nodes struct {
	kv jetstream.KeyValue
}

// NewNodes creates or updates the bucket. Every node may call it with the
// same options; Bucket defaults to DefaultNodesBucket and TTL to
// DefaultRegistryTTL.
func NewNodes(ctx context.Context, b *Bus, opts RegistryOptions) (*Nodes, error) {
	kv, _, err := ttlBucket(ctx, b, opts, DefaultNodesBucket, "Parley nodes: nodeID = URL the other nodes reach it at", false)
	if err != nil {
		return nil, fmt.Errorf("natsbus: node directory: %w", err)
	}
	return &Nodes{kv: kv}, nil
}

// PutNode records (or refreshes) that nodeID is reached at url.
func (n *Nodes) PutNode(ctx context.Context, nodeID, url string) error {
	if err := validToken(nodeID); err != nil {
		return fmt.Errorf("%w: node id: %v", chat.ErrInvalid, err)
	}
	if _, err := n.kv.Put(ctx, nodeID, []byte(url)); err != nil {
		return fmt.Errorf("natsbus: node directory put: %w", jsError(err))
	}
	return nil
}

// NodeURL returns the URL of a live node, or an error wrapping
// chat.ErrNotFound when no live node has that id.
func (n *Nodes) NodeURL(ctx context.Context, nodeID string) (string, error) {
	if err := validToken(nodeID); err != nil {
		return "", fmt.Errorf("%w: node id: %v", chat.ErrNotFound, err)
	}
	e, err := n.kv.Get(ctx, nodeID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("%w: no live node %q", chat.ErrNotFound, nodeID)
	}
	if err != nil {
		return "", fmt.Errorf("natsbus: node directory get: %w", jsError(err))
	}
	return string(e.Value()), nil
}
