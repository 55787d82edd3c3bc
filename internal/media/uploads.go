package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/internal/chat"
)

// Uploads keeps the state of resumable (tus) uploads on disk, so that an
// upload survives a dropped connection and a restart of the server: per
// upload, ID.json (owner, declared length, the media id it will become,
// whether it did) and ID.bin (the bytes received so far; its size is the
// offset). Each append is synced before it is acknowledged.
//
// One request at a time works on an upload: Lock hands an upload to a
// request, and a new request for an upload whose old request still hangs
// (a client that lost its connection and came back) interrupts the old one.
type Uploads struct {
	dir string

	mu    sync.Mutex
	locks map[string]*uploadLock
}

// UploadInfo is an upload's state.
type UploadInfo struct {
	ID        string            `json:"id"`
	Owner     string            `json:"owner"`
	Length    int64             `json:"length"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	MediaID   string            `json:"media_id"` // the media item it becomes
	Done      bool              `json:"done"`     // the media item exists
	CreatedAt int64             `json:"created_at"`
	UpdatedAt int64             `json:"updated_at"`
	Offset    int64             `json:"-"` // bytes received (the size of ID.bin; cut back to ID.off at open)
}

// Errors of Uploads.
var (
	ErrUploadNotFound = fmt.Errorf("media: no such upload: %w", chat.ErrNotFound)
	ErrUploadLocked   = fmt.Errorf("media: the upload is busy with another request: %w", chat.ErrConflict)
)

// OffsetMismatchError is a write at the wrong offset (409 in tus).
type OffsetMismatchError struct{ Offset int64 }

func (e *OffsetMismatchError) Error() string {
	return fmt.Sprintf("upload offset mismatch: the upload is at %d", e.Offset)
}

// Unwrap makes errors.Is(err, chat.ErrConflict) hold.
func (e *OffsetMismatchError) Unwrap() error { return chat.ErrConflict }

// OpenUploads opens (creating it) the upload directory.
func OpenUploads(dir string) (*Uploads, error) {
	if err := mkdirDurable(dir); err != nil {
		return nil, fmt.Errorf("media: creating %s: %w", dir, err)
	}
	u := &Uploads{dir: dir, locks: map[string]*uploadLock{}}
	if err := u.cutToSynced(); err != nil {
		return nil, err
	}
	return u, nil
}

// cutToSynced truncates every upload's data to its synced offset, dropping
// what a power cut left of appends that were never answered.
func (u *Uploads) cutToSynced() error {
	entries, err := os.ReadDir(u.dir)
	if err != nil {
		return unavailable("list uploads", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".off")
		if !ok || !validID(id) {
			continue
		}
		synced, _, err := u.syncedOffset(id)
		if err != nil {
			return unavailable("read upload state", err)
		}
		f, err := os.OpenFile(u.dataPath(id), os.O_WRONLY, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // done, or removed: Expire collects the rest
		}
		if err != nil {
			return unavailable("open upload", err)
		}
		st, err := f.Stat()
		if err == nil && st.Size() > synced {
			if err = f.Truncate(synced); err == nil {
				err = f.Sync()
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return unavailable("cut upload back to its synced offset", err)
		}
	}
	return nil
}

func (u *Uploads) infoPath(id string) string { return filepath.Join(u.dir, id+".json") }
func (u *Uploads) dataPath(id string) string { return filepath.Join(u.dir, id+".bin") }

// offPath is the upload's synced offset: 8 bytes, big-endian, rewritten in
// place after every append's fsync. The size of ID.bin is not enough after
// a power cut: the file may have grown by bytes that were written but never
// synced (a torn write keeps some of their pages, with whatever they held),
// and an offset read from the size would tell the client to resume past
// bytes that are not the ones it sent. OpenUploads cuts every file back to
// its synced offset; while the process runs, the size is the offset (what
// a running append wrote is in the page cache and is synced before its
// answer).
func (u *Uploads) offPath(id string) string { return filepath.Join(u.dir, id+".off") }

// writeOffset records off as synced. One 8-byte write inside one sector:
// a power cut leaves the old value or the new one.
func (u *Uploads) writeOffset(id string, off int64, create bool) error {
	flags := os.O_WRONLY
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(u.offPath(id), flags, 0o600)
	if err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(off))
	_, err = f.WriteAt(b[:], 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncedOffset reads ID.off; ok is false for an upload without one (made
// before offsets were recorded), whose size is then its offset.
func (u *Uploads) syncedOffset(id string) (off int64, ok bool, err error) {
	b, err := os.ReadFile(u.offPath(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case len(b) != 8:
		return 0, false, fmt.Errorf("media: upload offset file %s has %d bytes, want 8", u.offPath(id), len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), true, nil
}

// validID accepts the ids Create makes (32 hex digits) and nothing that
// could name another file.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Create starts an upload of length bytes for owner, to become mediaID.
func (u *Uploads) Create(owner string, length int64, meta map[string]string, mediaID string, now time.Time) (UploadInfo, error) {
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	info := UploadInfo{ID: hex.EncodeToString(rnd[:]), Owner: owner, Length: length, Metadata: meta,
		MediaID: mediaID, CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()}
	f, err := os.OpenFile(u.dataPath(info.ID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return UploadInfo{}, unavailable("create upload", err)
	}
	if err := f.Close(); err != nil {
		return UploadInfo{}, unavailable("create upload", err)
	}
	if err := u.writeOffset(info.ID, 0, true); err != nil {
		os.Remove(u.dataPath(info.ID))
		return UploadInfo{}, unavailable("create upload", err)
	}
	// writeInfo's directory fsync also makes ID.bin and ID.off durable.
	if err := u.writeInfo(info); err != nil {
		os.Remove(u.dataPath(info.ID))
		os.Remove(u.offPath(info.ID))
		return UploadInfo{}, err
	}
	return info, nil
}

// writeInfo replaces ID.json atomically and durably.
func (u *Uploads) writeInfo(info UploadInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(u.dir, "info-*.tmp")
	if err != nil {
		return unavailable("write upload state", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), u.infoPath(info.ID))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return unavailable("write upload state", err)
	}
	return syncDir(u.dir)
}

// Get returns an upload's state with its offset.
func (u *Uploads) Get(id string) (UploadInfo, error) {
	if !validID(id) {
		return UploadInfo{}, ErrUploadNotFound
	}
	b, err := os.ReadFile(u.infoPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return UploadInfo{}, ErrUploadNotFound
	}
	if err != nil {
		return UploadInfo{}, unavailable("read upload state", err)
	}
	var info UploadInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return UploadInfo{}, fmt.Errorf("media: upload state %s: %w", id, err)
	}
	if info.Done {
		info.Offset = info.Length
		return info, nil
	}
	st, err := os.Stat(u.dataPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return UploadInfo{}, ErrUploadNotFound
	}
	if err != nil {
		return UploadInfo{}, unavailable("read upload state", err)
	}
	info.Offset = st.Size()
	return info, nil
}

// uploadLock serializes the requests on one upload.
type uploadLock struct {
	held      chan struct{} // capacity 1: full while held
	interrupt func()        // stops the holder's body read
	active    atomic.Int64  // when the holder last made progress (unix ns)
	refs      int           // holders and waiters
}

// Held is an upload handed to one request.
type Held struct {
	u    *Uploads
	id   string
	l    *uploadLock
	once sync.Once
}

// Active records that the holder is making progress (it received bytes):
// a holder that makes none for StaleAfter may be interrupted.
func (h *Held) Active() { h.l.active.Store(time.Now().UnixNano()) }

// Unlock releases the upload.
func (h *Held) Unlock() {
	h.once.Do(func() {
		h.u.mu.Lock()
		h.l.interrupt = nil
		h.u.release(h.id, h.l)
		h.u.mu.Unlock()
		<-h.l.held
	})
}

// release drops one reference to a lock; u.mu is held.
func (u *Uploads) release(id string, l *uploadLock) {
	if l.refs--; l.refs == 0 {
		delete(u.locks, id)
	}
}

// StaleAfter is how long a request holding an upload may go without
// receiving a byte before a newer request for the upload interrupts it: a
// client that lost its connection (a pulled cable: the server hears
// nothing, not even a close) comes back on a new one and takes over. A
// holder that is still receiving is never interrupted: the newer request
// waits for it, then fails with ErrUploadLocked.
const StaleAfter = time.Second

// Lock waits up to wait until the caller may work on upload id; interrupt
// is how a newer request stops this one's body read if it stalls.
func (u *Uploads) Lock(ctx context.Context, id string, interrupt func(), wait time.Duration) (*Held, error) {
	u.mu.Lock()
	l := u.locks[id]
	if l == nil {
		l = &uploadLock{held: make(chan struct{}, 1)}
		u.locks[id] = l
	}
	l.refs++
	u.mu.Unlock()
	h := &Held{u: u, id: id, l: l}
	acquired := func() *Held {
		u.mu.Lock()
		l.interrupt = interrupt
		u.mu.Unlock()
		h.Active()
		return h
	}
	select {
	case l.held <- struct{}{}:
		return acquired(), nil
	default:
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(StaleAfter / 4)
	defer tick.Stop()
	for {
		select {
		case l.held <- struct{}{}:
			return acquired(), nil
		case <-tick.C:
			u.mu.Lock()
			if l.interrupt != nil && time.Since(time.Unix(0, l.active.Load())) > StaleAfter {
				l.interrupt()
				l.interrupt = nil
			}
			u.mu.Unlock()
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	u.mu.Lock()
	u.release(id, l)
	u.mu.Unlock()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, ErrUploadLocked
}

// Append writes what r gives at offset (which must be the upload's
// offset), at most up to the declared length, and syncs it. It returns the
// new offset even when r fails part way: what arrived is kept, and the
// client resumes from there. The caller holds the upload's lock.
func (u *Uploads) Append(id string, offset int64, r io.Reader) (int64, error) {
	info, err := u.Get(id)
	if err != nil {
		return 0, err
	}
	if info.Done || offset != info.Offset {
		return info.Offset, &OffsetMismatchError{Offset: info.Offset}
	}
	f, err := os.OpenFile(u.dataPath(id), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return info.Offset, unavailable("append to upload", err)
	}
	n, rerr := io.Copy(f, io.LimitReader(r, info.Length-offset))
	serr := f.Sync()
	if serr != nil {
		// The kernel may have dropped the pages this fsync failed to write
		// and will not say so again: a retried fsync would succeed without
		// them. Cut the file back to the last synced offset (and sync that)
		// so the offset a client is told never covers bytes not on disk.
		if terr := f.Truncate(offset); terr == nil {
			_ = f.Sync()
		}
	}
	if cerr := f.Close(); serr == nil {
		serr = cerr
	}
	if serr == nil && n > 0 {
		serr = u.writeOffset(id, offset+n, false)
	}
	if serr != nil {
		return offset, unavailable("append to upload", serr)
	}
	offset += n
	if rerr == nil && offset == info.Length {
		// Anything beyond the declared length is a client error.
		var one [1]byte
		if m, _ := r.Read(one[:]); m > 0 {
			rerr = fmt.Errorf("%w: more bytes than the declared Upload-Length %d", chat.ErrBadRequest, info.Length)
		}
	}
	return offset, rerr
}

// Data opens the received bytes for reading.
func (u *Uploads) Data(id string) (*os.File, error) {
	if !validID(id) {
		return nil, ErrUploadNotFound
	}
	f, err := os.Open(u.dataPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrUploadNotFound
	}
	if err != nil {
		return nil, unavailable("open upload", err)
	}
	return f, nil
}

// MarkDone records that the upload became its media item and drops its
// bytes; its state stays until Expire so a client that lost the answer can
// still learn the media id.
func (u *Uploads) MarkDone(info UploadInfo, now time.Time) error {
	info.Done, info.UpdatedAt = true, now.UnixMilli()
	if err := u.writeInfo(info); err != nil {
		return err
	}
	for _, p := range []string{u.dataPath(info.ID), u.offPath(info.ID)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return unavailable("remove upload data", err)
		}
	}
	return nil
}

// Remove deletes an upload (tus termination, or a file that cannot become
// media).
func (u *Uploads) Remove(id string) error {
	if !validID(id) {
		return ErrUploadNotFound
	}
	err1 := os.Remove(u.dataPath(id))
	err2 := os.Remove(u.offPath(id))
	err3 := os.Remove(u.infoPath(id))
	for _, err := range []error{err1, err2, err3} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return unavailable("remove upload", err)
		}
	}
	return syncDir(u.dir) // a terminated upload must not come back
}

// Touch records activity on an upload (its expiry counts from the last).
func (u *Uploads) Touch(info UploadInfo, now time.Time) error {
	info.UpdatedAt = now.UnixMilli()
	return u.writeInfo(info)
}

// Expire removes uploads untouched since before (unfinished ones, and
// finished ones whose state was kept for late clients), skipping those a
// request holds, and temporary files left by a crash. It returns how many
// uploads it removed.
func (u *Uploads) Expire(before time.Time) (int, error) {
	entries, err := os.ReadDir(u.dir)
	if err != nil {
		return 0, unavailable("list uploads", err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if fi, err := e.Info(); err == nil && fi.ModTime().Before(before) {
				os.Remove(filepath.Join(u.dir, name))
			}
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !validID(id) {
			continue
		}
		info, err := u.Get(id)
		if err != nil || info.UpdatedAt >= before.UnixMilli() {
			continue
		}
		u.mu.Lock()
		busy := u.locks[id] != nil
		u.mu.Unlock()
		if busy {
			continue
		}
		if err := u.Remove(id); err == nil {
			n++
		}
	}
	// Data and offset files whose state file is gone (a crash inside
	// Create or Remove).
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".bin")
		if !ok {
			id, ok = strings.CutSuffix(e.Name(), ".off")
		}
		if ok && validID(id) {
			if _, err := os.Stat(u.infoPath(id)); errors.Is(err, fs.ErrNotExist) {
				if fi, err := e.Info(); err == nil && fi.ModTime().Before(before) {
					os.Remove(filepath.Join(u.dir, e.Name()))
				}
			}
		}
	}
	return n, nil
}
