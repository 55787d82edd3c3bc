package loadgen

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ErrNoCentrifugo means no centrifugo binary was found: the comparison is
// skipped, not failed, on a machine without it.
var ErrNoCentrifugo = errors.New("no centrifugo binary (install it with `go install github.com/centrifugal/centrifugo/v6@v6.9.1`, or pass --centrifugo PATH)")

// FindCentrifugo returns bin if set, else centrifugo next to this
// executable, on PATH or in $(go env GOPATH)/bin.
func FindCentrifugo(bin string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%w: %w", ErrNoCentrifugo, err)
		}
		return bin, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "centrifugo"); isFile(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	var dirs []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "centrifugo"); isFile(p) {
			return p, nil
		}
	}
	return "", ErrNoCentrifugo
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// CentrifugoOptions say how to start Centrifugo.
type CentrifugoOptions struct {
	Binary  string // path to centrifugo
	Dir     string // where its config goes
	CPUs    string // taskset -c list ("" = no pinning)
	LogPath string // its output
}

// centrifugoConfig is the v6 configuration the benchmark runs with: HMAC
// JWTs, and any authenticated client may subscribe to and publish into a
// channel (the generator's senders publish into their receivers' channels).
// Nothing is kept: no history, no presence, the in-memory engine.
func centrifugoConfig(port int, secret string) map[string]any {
	return map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "warn"},
		"health":      map[string]any{"enabled": true},
		"client": map[string]any{
			"token":           map[string]any{"hmac_secret_key": secret},
			"allowed_origins": []string{"*"},
		},
		"channel": map[string]any{
			"without_namespace": map[string]any{
				"allow_subscribe_for_client": true,
				"allow_publish_for_client":   true,
			},
		},
		"http_api": map[string]any{"key": secret},
	}
}

// StartCentrifugo writes a config into o.Dir, starts Centrifugo on a free
// loopback port and waits for its /health. The returned ServerProc's Secret
// signs connection tokens.
func StartCentrifugo(ctx context.Context, o CentrifugoOptions) (*ServerProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(key[:])
	cfg, err := json.MarshalIndent(centrifugoConfig(port, secret), "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(o.Dir, "centrifugo.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, err
	}
	sp := &ServerProc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), DataDir: o.Dir, Secret: secret, done: make(chan error, 1)}
	sp.Args = []string{o.Binary, "--config", path}
	if err := sp.launch(ctx, o.CPUs, o.LogPath, sp.URL+"/health"); err != nil {
		return nil, fmt.Errorf("centrifugo: %w", err)
	}
	return sp, nil
}

// centrifugoToken returns an HS256 connection JWT for user, valid until exp.
func centrifugoToken(secret, user string, exp time.Time) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": user, "exp": exp.Unix()})
	msg := header + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}
