package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/server/servertest"
)

// powerMedia uploads files through both of parleyd's media paths while a
// power-loss cycle streams messages, and remembers what the server
// answered: a whole upload's 201, and each resumable PATCH's new offset.
// After the restart, verify checks that every answered upload downloads
// byte for byte and that no resumable upload lost an answered offset.
type powerMedia struct {
	token string
	rng   *rand.Rand // used by run only

	mu        sync.Mutex
	fresh     map[string][]byte // media id -> bytes, answered complete since the last verify
	old       map[string][]byte // verified after an earlier cut
	resumable []*powerUpload    // tus uploads answered created, not complete
}

type powerUpload struct {
	path  string
	file  []byte
	acked int // the offset the last answered PATCH reported
}

func newPowerMedia(token string) *powerMedia {
	return &powerMedia{token: token, rng: rand.New(rand.NewPCG(rand.Uint64(), 7)),
		fresh: map[string][]byte{}, old: map[string][]byte{}}
}

// run alternates whole and resumable uploads against base until stop is
// closed or the server stops answering (the power went).
func (m *powerMedia) run(base string, stop <-chan struct{}) {
	hc := &http.Client{Timeout: 10 * time.Second}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		file := make([]byte, 8<<10+m.rng.IntN(56<<10))
		for j := range file {
			file[j] = byte(m.rng.Uint32())
		}
		var err error
		if i%2 == 0 {
			err = m.whole(hc, base, file)
		} else {
			err = m.resumableUpload(hc, base, file)
		}
		if err != nil {
			return
		}
	}
}

func (m *powerMedia) do(hc *http.Client, method, u string, hdr map[string]string, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, raw, err
}

// whole is POST /api/v1/media: a 201 means the file is stored.
func (m *powerMedia) whole(hc *http.Client, base string, file []byte) error {
	resp, raw, err := m.do(hc, "POST", base+"/api/v1/media?name=power.bin", map[string]string{"Content-Type": "application/octet-stream"}, file)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload: %d %s", resp.StatusCode, raw)
	}
	var it mediaItem
	if err := json.Unmarshal(raw, &it); err != nil || it.MediaID == "" {
		return fmt.Errorf("upload answer %q: %v", raw, err)
	}
	m.mu.Lock()
	m.fresh[it.MediaID] = file
	m.mu.Unlock()
	return nil
}

// resumableUpload is a tus upload in 16 KiB PATCHes: the created upload and
// each answered offset must survive.
func (m *powerMedia) resumableUpload(hc *http.Client, base string, file []byte) error {
	with := func(kv ...string) map[string]string {
		h := map[string]string{"Tus-Resumable": "1.0.0"}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	resp, _, err := m.do(hc, "POST", base+"/api/v1/uploads", with("Upload-Length", strconv.Itoa(len(file)),
		"Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("power.bin"))), nil)
	if err != nil {
		return err
	}
	loc, perr := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusCreated || perr != nil || loc.Path == "" {
		return fmt.Errorf("create upload: %d %v", resp.StatusCode, resp.Header)
	}
	u := &powerUpload{path: loc.Path, file: file}
	m.mu.Lock()
	m.resumable = append(m.resumable, u)
	m.mu.Unlock()
	for off := 0; off < len(file); {
		end := min(off+16<<10, len(file))
		resp, _, err := m.do(hc, "PATCH", base+u.path, with("Upload-Offset", strconv.Itoa(off),
			"Content-Type", "application/offset+octet-stream"), file[off:end])
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("PATCH: %d", resp.StatusCode)
		}
		n, err := strconv.Atoi(resp.Header.Get("Upload-Offset"))
		if err != nil || n != end {
			return fmt.Errorf("PATCH answered offset %q, want %d", resp.Header.Get("Upload-Offset"), end)
		}
		m.mu.Lock()
		u.acked = n
		if id := resp.Header.Get("Parley-Media-Id"); n == len(file) && id != "" {
			m.fresh[id] = file
			m.resumable = m.resumable[:len(m.resumable)-1]
		}
		m.mu.Unlock()
		off = n
	}
	return nil
}

// verify checks, on the restarted server, every upload answered since the
// last verify and three older ones at random, and finishes every resumable
// upload from the offset the server reports, which must not be below the
// last answered one. It returns how many files it checked.
func (m *powerMedia) verify(t *testing.T, srv *servertest.Server) int {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.resumable {
		off := headOffset(t, srv, u.path, m.token)
		if off < u.acked {
			t.Errorf("resumable upload %s: the server has %d bytes after the power cut; it had answered %d", u.path, off, u.acked)
			continue
		}
		resp := patchAt(t, srv, u.path, m.token, off, u.file[off:])
		id := resp.Header.Get("Parley-Media-Id")
		if resp.StatusCode != http.StatusNoContent || id == "" {
			t.Errorf("finishing %s from %d after the power cut: %d %v", u.path, off, resp.StatusCode, resp.Header)
			continue
		}
		m.fresh[id] = u.file
	}
	m.resumable = nil
	check := func(id string, want []byte) {
		if resp, got := fetch(t, srv, m.token, id, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
			t.Errorf("media %s after the power cut: %d, %d bytes of %d, equal %v", id, resp.StatusCode, len(got), len(want), bytes.Equal(got, want))
		}
	}
	sample := 0
	for id, b := range m.old { // map order: a random few of the earlier ones
		if sample == 3 {
			break
		}
		check(id, b)
		sample++
	}
	n := 0
	for id, b := range m.fresh {
		check(id, b)
		m.old[id] = b
		n++
	}
	clear(m.fresh)
	return n
}
