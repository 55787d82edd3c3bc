package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-chat/parley/internal/chat"
)

// Defaults of RegistryOptions.
const (
	DefaultRegistryBucket = "parley_sessions"
	DefaultRegistryTTL    = 30 * time.Second
)

// RegistryOptions configures a Registry. Zero fields take their defaults.
type RegistryOptions struct {
	// Bucket is the KV bucket's name. Default "parley_sessions".
	Bucket string
	// TTL is how long a session key lives after its last Put. Nodes refresh
	// their sessions well within it (every TTL/3, say); the keys of a node
	// that stops refreshing (a crash) expire by themselves. Default 30 s,
	// at least 1 s.
	TTL time.Duration
	// Storage is the bucket's storage. Default file storage, so that a
	// restarted server keeps the registry and its watchers resume.
	Storage jetstream.StorageType
	// Replicas is the bucket's replica count in a cluster. Default 1.
	Replicas int
}

// Registry is the session and presence registry on a JetStream KV bucket
// with a TTL: one key "<userID>.<deviceID>" per connected device, whose
// value is the id of the node holding its socket. A user is online while any
// key of theirs lives. The bucket keeps expiry markers (LimitMarkerTTL) so
// that watchers see keys expire; that needs nats-server 2.11 or later. The
// keys live on the subjects $KV.<bucket>.<userID>.<deviceID>.
type Registry struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	pre string // the keys' subject prefix: $KV.<bucket>.
	ttl time.Duration
	log *slog.Logger
}

// NewRegistry creates or updates the bucket and returns its registry.
// Every node may call it with the same options.
func NewRegistry(ctx context.Context, b *Bus, opts RegistryOptions) (*Registry, error) {
	kv, ttl, err := ttlBucket(ctx, b, opts, DefaultRegistryBucket, "Parley sessions: <userID>.<deviceID> = nodeID", true)
	if err != nil {
		return nil, fmt.Errorf("natsbus: registry: %w", err)
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, fmt.Errorf("natsbus: registry: %w", err)
	}
	return &Registry{nc: b.nc, js: js, kv: kv, pre: "$KV." + kv.Bucket() + ".", ttl: ttl, log: b.log}, nil
}

// ttlBucket creates or updates a KV bucket whose keys expire after the TTL
// unless put again, filling opts' defaults (bucket name defaultBucket, TTL
// DefaultRegistryTTL, one replica). markers keeps expiry markers, so that
// watchers see keys expire.
func ttlBucket(ctx context.Context, b *Bus, opts RegistryOptions, defaultBucket, description string, markers bool) (jetstream.KeyValue, time.Duration, error) {
	if opts.Bucket == "" {
		opts.Bucket = defaultBucket
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultRegistryTTL
	}
	if opts.TTL < time.Second {
		return nil, 0, fmt.Errorf("TTL %v: at least 1s", opts.TTL)
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, 0, err
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: description,
		History:     1,
		TTL:         opts.TTL,
		Storage:     opts.Storage,
		Replicas:    max(opts.Replicas, 1),
	}
	if markers {
		cfg.LimitMarkerTTL = opts.TTL
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("bucket %s: %w", opts.Bucket, jsError(err))
	}
	return kv, opts.TTL, nil
}

// TTL is how long a session lives without a refresh.
func (r *Registry) TTL() time.Duration { return r.ttl }

// Put records (or refreshes) that deviceID of userID has a socket on nodeID.
func (r *Registry) Put(ctx context.Context, userID, deviceID, nodeID string) error {
	key, err := sessionKey(userID, deviceID)
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, key, []byte(nodeID)); err != nil {
		return fmt.Errorf("natsbus: registry put: %w", jsError(err))
	}
	return nil
}

// PutMany records (or refreshes) that every session's device has a socket
// on nodeID: one put per session like Put, but pipelined (asynchronous
// publishes, then one wait for every acknowledgement), so refreshing a
// node's 10,000 sessions costs a few round trips, not 10,000.
func (r *Registry) PutMany(ctx context.Context, sessions []chat.Session, nodeID string) error {
	var errs []error
	for len(sessions) > 0 {
		n := min(len(sessions), putManyBatch)
		errs = append(errs, r.putBatch(ctx, sessions[:n], []byte(nodeID)))
		if ctx.Err() != nil {
			break
		}
		sessions = sessions[n:]
	}
	return errors.Join(errs...)
}

// putManyBatch bounds the publishes in flight (the JetStream client stalls
// past 4,000 by default).
const putManyBatch = 2048

func (r *Registry) putBatch(ctx context.Context, sessions []chat.Session, value []byte) error {
	var errs []error
	futures := make([]jetstream.PubAckFuture, 0, len(sessions))
	for _, sess := range sessions {
		key, err := sessionKey(sess.UserID, sess.DeviceID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := r.js.PublishAsync(r.pre+key, value)
		if err != nil {
			errs = append(errs, fmt.Errorf("natsbus: registry put: %w", jsError(err)))
			break
		}
		futures = append(futures, f)
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-ctx.Done():
		return errors.Join(append(errs, ctx.Err())...)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("natsbus: registry put: %w", jsError(err)))
		}
	}
	return errors.Join(errs...)
}

// Delete removes a device's session (its last socket on nodeID closed),
// unless another node holds it now: a device that moved to another node
// (it reconnected there before its old socket here was closed) keeps its
// session. An empty nodeID deletes whoever holds it.
func (r *Registry) Delete(ctx context.Context, userID, deviceID, nodeID string) error {
	key, err := sessionKey(userID, deviceID)
	if err != nil {
		return err
	}
	var opts []jetstream.KVDeleteOpt
	if nodeID != "" {
		e, err := r.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("natsbus: registry delete: %w", jsError(err))
		case string(e.Value()) != nodeID:
			return nil // another node holds the device now
		}
		opts = append(opts, jetstream.LastRevision(e.Revision()))
	}
	err = r.kv.Delete(ctx, key, opts...)
	if nodeID != "" && isWrongRevision(err) {
		return nil // another node put the key since we read it: it holds it now
	}
	if err != nil {
		return fmt.Errorf("natsbus: registry delete: %w", jsError(err))
	}
	return nil
}

// isWrongRevision says whether err is JetStream refusing a write made with a
// stale expected revision.
func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	if jsErr := jetstream.JetStreamError(nil); errors.As(err, &jsErr) {
		apiErr = jsErr.APIError()
	} else if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr != nil && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Online says whether any device of userID has a live session.
func (r *Registry) Online(ctx context.Context, userID string) (bool, error) {
	found := false
	err := r.scan(ctx, userID, true, func(jetstream.KeyValueEntry) bool {
		found = true
		return false
	})
	return found, err
}

// Devices returns the live sessions of userID: device id → node id.
func (r *Registry) Devices(ctx context.Context, userID string) (map[string]string, error) {
	devs := make(map[string]string)
	err := r.scan(ctx, userID, false, func(e jetstream.KeyValueEntry) bool {
		_, dev, _ := strings.Cut(e.Key(), ".")
		devs[dev] = string(e.Value())
		return true
	})
	return devs, err
}

// scan calls f for every live key of userID until f returns false. It costs
// an ephemeral ordered consumer: a few round trips.
func (r *Registry) scan(ctx context.Context, userID string, metaOnly bool, f func(jetstream.KeyValueEntry) bool) error {
	if err := validToken(userID); err != nil {
		return fmt.Errorf("%w: user id: %v", chat.ErrInvalid, err)
	}
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if metaOnly {
		opts = append(opts, jetstream.MetaOnly())
	}
	// The watcher lives until its context ends: give it one that does.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := r.kv.WatchFiltered(ctx, []string{userID + ".*"}, opts...)
	if err != nil {
		return fmt.Errorf("natsbus: registry scan: %w", jsError(err))
	}
	defer stopWatcher(w)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("natsbus: registry scan: %w: watcher closed", chat.ErrUnavailable)
			}
			if e == nil || !f(e) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Watch loads the registry, returns, and from then on calls h, in order and
// on one goroutine, for every user going online (their first session
// appears) or offline (their last session is deleted or expires). An
// offline change's LastSeen is the deletion time, or for an expiry the
// session's last refresh. Users already online when Watch starts are
// reported first, as going online. The watcher holds every live session in
// memory.
//
// When the connection comes back after an outage, the watcher reloads the
// registry and reports the difference, so changes missed meanwhile are
// reported late rather than never. It runs until ctx is done, the bus is
// closed or stop is called; stop waits for h to return.
func (r *Registry) Watch(ctx context.Context, h func(chat.PresenceChange)) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	status := r.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	st := &presenceState{users: make(map[string]devSeen)}
	w, wcancel, err := r.load(ctx, st, h)
	if err != nil {
		cancel()
		r.nc.RemoveStatusListener(status)
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.nc.RemoveStatusListener(status)
		for {
			resync := r.follow(ctx, w, st, h, status)
			wcancel()
			stopWatcher(w)
			if !resync {
				return
			}
			for {
				var lerr error
				if w, wcancel, lerr = r.load(ctx, st, h); lerr == nil {
					break
				}
				if r.gone() {
					return
				}
				r.log.Warn("registry watch reload failed", "err", lerr)
				select {
				case <-ctx.Done():
					return
				case s, ok := <-status:
					if !ok || s == nats.CLOSED {
						return
					}
				case <-time.After(time.Second):
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}

// load starts a watcher and reads the registry's current sessions into st.
// With h set, it reports how the new picture differs from the old one.
func (r *Registry) load(ctx context.Context, st *presenceState, h func(chat.PresenceChange)) (jetstream.KeyWatcher, context.CancelFunc, error) {
	wctx, wcancel := context.WithCancel(ctx)
	w, err := r.kv.WatchAll(wctx, jetstream.MetaOnly())
	if err != nil {
		wcancel()
		return nil, nil, fmt.Errorf("natsbus: registry watch: %w", jsError(err))
	}
	fail := func(err error) (jetstream.KeyWatcher, context.CancelFunc, error) {
		wcancel()
		stopWatcher(w)
		return nil, nil, err
	}
	fresh := &presenceState{users: make(map[string]devSeen)}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for loading := true; loading; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fail(fmt.Errorf("natsbus: registry watch: %w: watcher closed", chat.ErrUnavailable))
			}
			if e == nil {
				loading = false
				break
			}
			fresh.apply(e)
		case <-timeout.C:
			return fail(fmt.Errorf("natsbus: registry watch: %w: loading timed out", chat.ErrUnavailable))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if h != nil {
		for user, devs := range st.users {
			if len(fresh.users[user]) == 0 {
				h(chat.PresenceChange{UserID: user, Online: false, LastSeen: latest(devs).UnixMilli()})
			}
		}
		for user, devs := range fresh.users {
			if len(st.users[user]) == 0 {
				h(chat.PresenceChange{UserID: user, Online: true, LastSeen: latest(devs).UnixMilli()})
			}
		}
	}
	st.users = fresh.users
	return w, wcancel, nil
}

// follow applies w's updates to st, reporting changes, until ctx is done or
// the bus closes (false) or the watcher must be reloaded (true): the
// connection came back, or the watcher ended.
func (r *Registry) follow(ctx context.Context, w jetstream.KeyWatcher, st *presenceState, h func(chat.PresenceChange), status <-chan nats.Status) bool {
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return ctx.Err() == nil && !r.gone()
			}
			if e == nil {
				continue
			}
			if ch, changed := st.apply(e); changed {
				h(ch)
			}
		case s, ok := <-status:
			if !ok || s == nats.CLOSED {
				return false
			}
			r.log.Info("registry watch reloading after reconnect")
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// presenceState is a watcher's picture: user → its devices' last puts. A
// user has one or two devices as a rule, so a short slice, not a map.
type presenceState struct {
	users map[string]devSeen
}

// devSeen is a user's live sessions.
type devSeen []devPut

// devPut is one live session: its device and last put.
type devPut struct {
	dev string
	at  time.Time
}

func (d devSeen) find(dev string) int {
	for i := range d {
		if d[i].dev == dev {
			return i
		}
	}
	return -1
}

// apply folds one KV entry into the state and says whether the user's
// presence changed.
func (s *presenceState) apply(e jetstream.KeyValueEntry) (chat.PresenceChange, bool) {
	user, dev, ok := strings.Cut(e.Key(), ".")
	if !ok {
		return chat.PresenceChange{}, false
	}
	devs := s.users[user]
	i := devs.find(dev)
	switch e.Operation() {
	case jetstream.KeyValuePut:
		wasOnline := len(devs) > 0
		if i >= 0 {
			devs[i].at = e.Created()
		} else {
			s.users[user] = append(devs, devPut{dev, e.Created()})
		}
		return chat.PresenceChange{UserID: user, Online: true, LastSeen: e.Created().UnixMilli()}, !wasOnline
	default: // deleted, or purged by expiry
		if i < 0 {
			return chat.PresenceChange{}, false
		}
		seen := devs[i].at
		if len(devs) > 1 {
			devs[i] = devs[len(devs)-1]
			s.users[user] = devs[:len(devs)-1]
			return chat.PresenceChange{}, false
		}
		delete(s.users, user)
		if e.Operation() == jetstream.KeyValueDelete {
			seen = e.Created()
		}
		return chat.PresenceChange{UserID: user, Online: false, LastSeen: seen.UnixMilli()}, true
	}
}

// gone says whether the bus is closing or closed.
func (r *Registry) gone() bool { return r.nc.IsClosed() || r.nc.IsDraining() }

// latest returns the last put among a user's devices.
func latest(devs devSeen) time.Time {
	var t time.Time
	for _, d := range devs {
		if d.at.After(t) {
			t = d.at
		}
	}
	return t
}

// stopWatcher stops w and drains its channel so that its delivery goroutine,
// which may be blocked on a full channel, can end.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

func sessionKey(userID, deviceID string) (string, error) {
	if err := validToken(userID); err != nil {
		return "", fmt.Errorf("%w: user id: %v", chat.ErrInvalid, err)
	}
	if err := validToken(deviceID); err != nil {
		return "", fmt.Errorf("%w: device id: %v", chat.ErrInvalid, err)
	}
	return userID + "." + deviceID, nil
}

// validToken accepts one KV key token: [A-Za-z0-9_=-]+.
func validToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '=') {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

// jsError marks the errors of an unreachable JetStream as chat.ErrUnavailable.
func jsError(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return err // the server answered: a configuration or request problem
	}
	if errors.Is(err, jetstream.ErrInvalidKey) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", chat.ErrUnavailable, err)
}
