package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Accounts are the users and conversations a run created, cached in a file
// so that a rerun against the same server data skips the setup (creating
// 19,000 users takes a while even at bcrypt cost 4).
type Accounts struct {
	URL   string               `json:"url"`
	Pools map[string][]Account `json:"pools"` // by pool name: "u" (general), "s" (sync)
	Convs map[string]string    `json:"convs"` // setup key -> conversation id
	Marks map[string]bool      `json:"marks"` // setup steps done (seeding)

	path string
	mu   sync.Mutex
}

// Account is one user with one logged-in device.
type Account struct {
	Name   string `json:"n"`
	ID     string `json:"id"`
	Token  string `json:"t"`
	Device string `json:"d"`
}

// BenchPassword is the password of every generated account.
const BenchPassword = "parley-bench-password"

// LoadAccounts reads the cache at path (a missing file is an empty cache).
func LoadAccounts(path, url string) (*Accounts, error) {
	a := &Accounts{URL: url, Pools: map[string][]Account{}, Convs: map[string]string{}, Marks: map[string]bool{}, path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("account cache %s: %w", path, err)
	}
	a.path, a.URL = path, url
	for _, m := range []*map[string]string{&a.Convs} {
		if *m == nil {
			*m = map[string]string{}
		}
	}
	if a.Pools == nil {
		a.Pools = map[string][]Account{}
	}
	if a.Marks == nil {
		a.Marks = map[string]bool{}
	}
	return a, nil
}

// Save writes the cache.
func (a *Accounts) Save() error {
	if a.path == "" {
		return nil
	}
	a.mu.Lock()
	b, err := json.Marshal(a)
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.path), 0o755); err != nil {
		return err
	}
	tmp := a.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.path)
}

// api is a small REST client for setup.
type api struct {
	url    string
	client *http.Client
}

func newAPI(url string) *api {
	return &api{url: url, client: &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64},
	}}
}

// statusError is a non-2xx answer.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %.300s", e.status, e.body) }

func httpStatus(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return 0
}

func (c *api) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{resp.StatusCode, string(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *api) login(ctx context.Context, name string) (Account, error) {
	var lr struct {
		Token    string `json:"token"`
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	err := c.do(ctx, "POST", "/api/v1/auth/login", "", map[string]string{"username": name, "password": BenchPassword, "device_name": "parley-bench"}, &lr)
	return Account{Name: name, ID: lr.UserID, Token: lr.Token, Device: lr.DeviceID}, err
}

// ensureAccount registers (if needed) and logs in one user.
func (c *api) ensureAccount(ctx context.Context, name string) (Account, error) {
	err := c.do(ctx, "POST", "/api/v1/auth/register", "", map[string]string{"username": name, "password": BenchPassword}, nil)
	if err != nil && httpStatus(err) != http.StatusConflict {
		return Account{}, fmt.Errorf("register %s: %w", name, err)
	}
	a, err := c.login(ctx, name)
	if err != nil {
		return Account{}, fmt.Errorf("login %s: %w", name, err)
	}
	return a, nil
}

// parallel runs fn(i) for i in [from, to) on conc goroutines and returns the
// first error.
func parallel(ctx context.Context, from, to, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := from; i < to; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return first
}

// validate drops the cache if its tokens no longer work on this server (its
// data directory was replaced).
func (a *Accounts) validate(ctx context.Context, c *api) {
	for _, pool := range a.Pools {
		for _, i := range []int{0, len(pool) - 1} {
			if i < 0 {
				continue
			}
			if err := c.do(ctx, "GET", "/api/v1/users/me", pool[i].Token, nil, nil); err != nil {
				a.Pools, a.Convs, a.Marks = map[string][]Account{}, map[string]string{}, map[string]bool{}
				return
			}
		}
	}
}

// Users returns the first n accounts of a pool, creating the missing ones
// over REST, conc at a time.
func (a *Accounts) Users(ctx context.Context, c *api, pool string, n int, progress func(done, total int)) ([]Account, error) {
	a.mu.Lock()
	have := len(a.Pools[pool])
	a.mu.Unlock()
	if have >= n {
		return a.Pools[pool][:n], nil
	}
	created := make([]Account, n-have)
	var mu sync.Mutex
	done := 0
	err := parallel(ctx, have, n, 32, func(ctx context.Context, i int) error {
		acc, err := c.ensureAccount(ctx, fmt.Sprintf("pb%s%05d", pool, i))
		if err != nil {
			return err
		}
		created[i-have] = acc
		mu.Lock()
		done++
		if progress != nil && done%1000 == 0 {
			progress(done, n-have)
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.Pools[pool] = append(a.Pools[pool][:have], created...)
	out := a.Pools[pool][:n]
	a.mu.Unlock()
	return out, a.Save()
}

type convResp struct {
	ID      string `json:"conversation_id"`
	LastSeq int64  `json:"last_seq"`
}

// Direct returns the direct conversation of two accounts (cached by key).
func (a *Accounts) Direct(ctx context.Context, c *api, key string, x, y Account) (string, error) {
	a.mu.Lock()
	id, ok := a.Convs[key]
	a.mu.Unlock()
	if ok {
		return id, nil
	}
	var cr convResp
	if err := c.do(ctx, "POST", "/api/v1/conversations", x.Token, map[string]string{"type": "direct", "user_id": y.ID}, &cr); err != nil {
		return "", fmt.Errorf("direct conversation %s: %w", key, err)
	}
	a.mu.Lock()
	a.Convs[key] = cr.ID
	a.mu.Unlock()
	return cr.ID, nil
}

// Group returns a group of the given members created by the first (cached
// by key).
func (a *Accounts) Group(ctx context.Context, c *api, key string, members []Account) (string, error) {
	a.mu.Lock()
	id, ok := a.Convs[key]
	a.mu.Unlock()
	if ok {
		return id, nil
	}
	ids := make([]string, 0, len(members)-1)
	for _, m := range members[1:] {
		ids = append(ids, m.ID)
	}
	var cr convResp
	if err := c.do(ctx, "POST", "/api/v1/groups", members[0].Token, map[string]any{"name": key, "members": ids}, &cr); err != nil {
		return "", fmt.Errorf("group %s: %w", key, err)
	}
	a.mu.Lock()
	a.Convs[key] = cr.ID
	a.mu.Unlock()
	return cr.ID, nil
}

// Mark records a setup step as done.
func (a *Accounts) Mark(key string) error {
	a.mu.Lock()
	a.Marks[key] = true
	a.mu.Unlock()
	return a.Save()
}

// Marked reports whether a setup step was done.
func (a *Accounts) Marked(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Marks[key]
}
