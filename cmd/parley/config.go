package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// fileConfig is what `parley login` stores: where and as whom the CLI talks.
type fileConfig struct {
	Server   string `json:"server,omitempty"`
	Token    string `json:"token,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	Username string `json:"username,omitempty"`
	// ExpiresAt is when the token expires (ms since the epoch).
	ExpiresAt int64 `json:"expires_at,omitempty"`
	// Cursors are the last seq `parley listen` printed per conversation,
	// used by `parley listen --resume`.
	Cursors map[string]int64 `json:"cursors,omitempty"`
}

// configPath returns the config file path: the --config flag, else
// $PARLEY_CONFIG, else os.UserConfigDir()/parley/config.json.
func configPath(flagValue string, getenv func(string) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p := getenv("PARLEY_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the user config directory (set PARLEY_CONFIG): %w", err)
	}
	return filepath.Join(dir, "parley", "config.json"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (*fileConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &fileConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var c fileConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("config file %s is not valid JSON: %w", path, err)
	}
	return &c, nil
}

// saveConfig writes the config file with mode 0600 (its directory 0700),
// atomically: a crash never leaves a half-written file.
func saveConfig(path string, c *fileConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
