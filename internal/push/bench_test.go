package push_test

import (
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/push"
	"github.com/parley-chat/parley/internal/push/pushjs"
	"github.com/parley-chat/parley/internal/push/pushtest"
)

// BenchmarkWorkerThroughput measures the whole worker against a local
// service: b.N notifications, each for its own (user, conversation), are
// recorded in the outbox, queued as jobs, claimed, sent over HTTPS and
// finished. The stand-in receiver runs in the same process and does the
// real service's work (for Web Push: verify the VAPID signature and
// decrypt), so the figure is a floor. It reports pushes/s.
//
// The -jetstream variants hand the jobs over to a JetStream push queue on
// an embedded nats-server (file storage, in the same process) and send what
// its consumer delivers, as a node with --nats does: the same store work,
// plus a publish and an acknowledgement per job and a subscription read
// per send.
//
//	go test -run '^$' -bench WorkerThroughput -benchtime 5000x ./internal/push
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, js := range []bool{false, true} {
		suffix := ""
		if js {
			suffix = "-jetstream"
		}
		b.Run("webpush"+suffix, func(b *testing.B) {
			wp := pushtest.NewWebPush(b)
			benchWorker(b, wp.Server, push.Config{}, js, chat.PlatformWebPush, func() (string, []byte, []byte) {
				s := wp.Subscribe(true)
				return s.Endpoint, mustB64(b, s.P256dh), mustB64(b, s.Auth)
			}, wp.AcceptedCount)
		})
		b.Run("apns"+suffix, func(b *testing.B) {
			ap := pushtest.NewAPNs(b)
			benchWorker(b, ap.Server, push.Config{APNs: ap.Config()}, js, chat.PlatformAPNs, func() (string, []byte, []byte) {
				return pushtest.DeviceToken(), nil, nil
			}, ap.AcceptedCount)
		})
	}
}

func benchWorker(b *testing.B, srv *httptest.Server, cfg push.Config, js bool, platform string, endpoint func() (string, []byte, []byte), accepted func() int) {
	const users = 100
	var deps []func(*push.Deps)
	if js {
		deps = append(deps, withQueue(openNode(b, startNATS(b), "bench", pushjs.Options{}).queue))
	}
	e := newEnv(b, cfg, srv, false, deps...)
	ids := make([]string, users)
	for i := range users {
		u := chat.User{ID: fmt.Sprintf("u%03d", i), Username: fmt.Sprintf("user%03d", i), DisplayName: "Alice", CreatedAt: 1}
		d := chat.Device{ID: "d" + u.ID, UserID: u.ID, CreatedAt: 1}
		if err := e.store.CreateUser(e.ctx, u, []byte("x")); err != nil {
			b.Fatal(err)
		}
		if err := e.store.CreateDevice(e.ctx, d); err != nil {
			b.Fatal(err)
		}
		ep, p256dh, auth := endpoint()
		sub := chat.PushSubscription{ID: "s" + u.ID, UserID: u.ID, DeviceID: d.ID, Platform: platform, Endpoint: ep, P256dh: p256dh, Auth: auth, CreatedAt: 1}
		if _, err := e.store.SavePushSubscription(e.ctx, sub, 10); err != nil {
			b.Fatal(err)
		}
		ids[i] = u.ID
	}
	e.push.Start(e.presence)
	b.ResetTimer()
	start := time.Now()
	events := make([]chat.PushEvent, 0, 1024)
	for i := range b.N {
		events = append(events, chat.PushEvent{UserID: ids[i%users], ConversationID: fmt.Sprint("c", i), SenderID: ids[(i+1)%users], Seq: 1, At: 1})
		if len(events) == cap(events) || i == b.N-1 {
			if _, err := e.store.RecordPushes(e.ctx, events); err != nil {
				b.Fatal(err)
			}
			events = events[:0]
		}
	}
	e.push.Committed(nil) // nothing to record; the worker polls the outbox
	deadline := time.Now().Add(5 * time.Minute)
	for accepted() < b.N {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pushes accepted", accepted(), b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pushes/s")
}

func mustB64(b *testing.B, s string) []byte {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}
