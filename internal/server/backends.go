package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/bus/natsbus"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/gateway"
	"github.com/parley-chat/parley/internal/store/postgres"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// openStore opens PostgreSQL when --postgres is set, else the embedded SQLite
// store in the data directory. It returns a name for the logs.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (chat.Store, string, error) {
	if cfg.Postgres != "" {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := postgres.Open(octx, cfg.Postgres, postgres.Options{})
		if err != nil {
			return nil, "", fmt.Errorf("opening the PostgreSQL store: %w", err)
		}
		return s, "postgres", nil
	}
	path := filepath.Join(cfg.DataDir, "parley.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Logger: log})
	if err != nil {
		return nil, "", fmt.Errorf("opening the store at %s: %w", path, err)
	}
	return s, "sqlite", nil
}

// openBus connects to NATS when --nats is set, else makes the in-process bus.
func openBus(ctx context.Context, cfg Config, log *slog.Logger) (chat.Bus, string, error) {
	if cfg.NATS == "" {
		return local.New(), "in-process", nil
	}
	var urls []string
	for _, u := range strings.Split(cfg.NATS, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := natsbus.Open(octx, urls, natsbus.Options{Name: cfg.NodeID, Logger: log})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to NATS at %s: %w", cfg.NATS, err)
	}
	return b, "nats", nil
}

// joinCluster puts the node's sessions into the cluster's registry (a
// JetStream KV bucket) and makes presence follow the whole cluster, when the
// bus is NATS; on the in-process bus there is nothing to join.
func joinCluster(ctx context.Context, cfg Config, bus chat.Bus, gw *gateway.Gateway) error {
	nb, ok := bus.(*natsbus.Bus)
	if !ok {
		return nil
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reg, err := natsbus.NewRegistry(octx, nb, natsbus.RegistryOptions{TTL: cfg.SessionTTL})
	if err != nil {
		return fmt.Errorf("opening the session registry: %w", err)
	}
	cc := gateway.ClusterConfig{Sessions: reg, NodeID: cfg.NodeID}
	if cfg.AdvertiseURL != "" {
		nodes, err := natsbus.NewNodes(octx, nb, natsbus.RegistryOptions{TTL: cfg.SessionTTL})
		if err != nil {
			return fmt.Errorf("opening the node directory: %w", err)
		}
		cc.Nodes, cc.AdvertiseURL = nodes, cfg.AdvertiseURL
	}
	if err := gw.StartCluster(cc); err != nil {
		return fmt.Errorf("following the session registry: %w", err)
	}
	return nil
}

// defaultNodeID names this process among the nodes of a cluster.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// OpenStore opens the store the configuration names (--postgres, else the
// embedded store under --data-dir), for tools such as "parleyd admin"; a
// tool logs to slog.Default().
func OpenStore(ctx context.Context, cfg Config) (chat.Store, error) {
	s, _, err := openStore(ctx, cfg, slog.Default())
	return s, err
}
