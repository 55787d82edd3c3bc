package storetest

import (
	"bytes"
	"slices"

	"github.com/parley-chat/parley/internal/chat"
)

var accountTests = []test{
	{"UserRoundTrip", testUserRoundTrip},
	{"UsernameTaken", testUsernameTaken},
	{"UserNotFound", testUserNotFound},
	{"SetLastSeen", testSetLastSeen},
	{"DeviceRoundTrip", testDeviceRoundTrip},
	{"DevicesOldestFirst", testDevicesOldestFirst},
	{"DeviceOfUnknownUser", testDeviceOfUnknownUser},
	{"TouchDevice", testTouchDevice},
	{"TouchDevices", testTouchDevices},
	{"SessionRoundTrip", testSessionRoundTrip},
	{"DeleteSession", testDeleteSession},
	{"DeleteDeviceSessions", testDeleteDeviceSessions},
	{"Ping", testPing},
}

func testUserRoundTrip(f *fixture) {
	t := f.t
	u := chat.User{ID: f.id(), Username: "alice", DisplayName: "Alice Liddell ✨", CreatedAt: f.tick()}
	hash := []byte("$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA\x00\xff")
	noErr(t, "CreateUser", f.s.CreateUser(f.ctx, u, hash))

	got, err := f.s.User(f.ctx, u.ID)
	noErr(t, "User", err)
	if got != u {
		t.Errorf("User = %+v, want %+v", got, u)
	}
	got, gotHash, err := f.s.UserByUsername(f.ctx, "alice")
	noErr(t, "UserByUsername", err)
	if got != u {
		t.Errorf("UserByUsername = %+v, want %+v", got, u)
	}
	if !bytes.Equal(gotHash, hash) {
		t.Errorf("password hash = %q, want %q", gotHash, hash)
	}
}

func testUsernameTaken(f *fixture) {
	t := f.t
	first := f.user("bob")
	dup := chat.User{ID: f.id(), Username: "bob", DisplayName: "Other Bob", CreatedAt: f.tick()}
	wantErr(t, "CreateUser with a taken username", f.s.CreateUser(f.ctx, dup, []byte("x")), chat.ErrConflict)

	got, hash, err := f.s.UserByUsername(f.ctx, "bob")
	noErr(t, "UserByUsername", err)
	if got != first || string(hash) != "hash of bob" {
		t.Errorf("the first bob was changed: %+v %q", got, hash)
	}
	_, err = f.s.User(f.ctx, dup.ID)
	wantErr(t, "User of the refused user", err, chat.ErrNotFound)
}

func testUserNotFound(f *fixture) {
	t := f.t
	f.user("carol")
	_, err := f.s.User(f.ctx, "no-such-user")
	wantErr(t, "User(unknown)", err, chat.ErrNotFound)
	_, _, err = f.s.UserByUsername(f.ctx, "nobody")
	wantErr(t, "UserByUsername(unknown)", err, chat.ErrNotFound)
	_, _, err = f.s.UserByUsername(f.ctx, "CAROL")
	wantErr(t, "UserByUsername is exact-match", err, chat.ErrNotFound)
}

func testSetLastSeen(f *fixture) {
	t := f.t
	u := f.user("dave")
	at := f.tick()
	noErr(t, "SetLastSeen", f.s.SetLastSeen(f.ctx, u.ID, at))
	got, err := f.s.User(f.ctx, u.ID)
	noErr(t, "User", err)
	if got.LastSeen != at {
		t.Errorf("LastSeen = %d, want %d", got.LastSeen, at)
	}
	// Pinned: an unknown user is ErrNotFound.
	wantErr(t, "SetLastSeen(unknown)", f.s.SetLastSeen(f.ctx, "no-such-user", at), chat.ErrNotFound)
}

func testDeviceRoundTrip(f *fixture) {
	t := f.t
	u := f.user("erin")
	d := chat.Device{ID: f.id(), UserID: u.ID, Name: "Erin's phone", CreatedAt: f.tick(), LastSeen: f.tick()}
	noErr(t, "CreateDevice", f.s.CreateDevice(f.ctx, d))
	got, err := f.s.Device(f.ctx, d.ID)
	noErr(t, "Device", err)
	if got != d {
		t.Errorf("Device = %+v, want %+v", got, d)
	}
	_, err = f.s.Device(f.ctx, "no-such-device")
	wantErr(t, "Device(unknown)", err, chat.ErrNotFound)
}

func testDevicesOldestFirst(f *fixture) {
	t := f.t
	u, other := f.user("frank"), f.user("grace")
	if ds, err := f.s.Devices(f.ctx, u.ID); err != nil || len(ds) != 0 {
		t.Fatalf("Devices of a user without devices = %v, %v; want none", ds, err)
	}
	// Created out of creation-time order: listed by created_at.
	base := f.tick()
	mk := func(name string, createdAt int64) chat.Device {
		d := chat.Device{ID: f.id(), UserID: u.ID, Name: name, CreatedAt: createdAt, LastSeen: createdAt}
		noErr(t, "CreateDevice", f.s.CreateDevice(f.ctx, d))
		return d
	}
	laptop := mk("laptop", base+2000)
	phone := mk("phone", base+1000)
	tablet := mk("tablet", base+3000)
	f.device(other, "someone else's")

	got, err := f.s.Devices(f.ctx, u.ID)
	noErr(t, "Devices", err)
	want := []chat.Device{phone, laptop, tablet}
	if !slices.Equal(got, want) {
		t.Errorf("Devices = %+v, want %+v", got, want)
	}
}

func testDeviceOfUnknownUser(f *fixture) {
	// Pinned: a device must belong to an existing user.
	d := chat.Device{ID: f.id(), UserID: "no-such-user", Name: "ghost", CreatedAt: f.tick()}
	wantErr(f.t, "CreateDevice(unknown user)", f.s.CreateDevice(f.ctx, d), chat.ErrNotFound)
}

func testTouchDevices(f *fixture) {
	t := f.t
	u := f.user("ivan")
	a, b, c := f.device(u, "a"), f.device(u, "b"), f.device(u, "c")
	later := f.tick() + 10_000
	noErr(t, "TouchDevices", f.s.TouchDevices(f.ctx, map[string]int64{a.ID: later, b.ID: later + 1, "no-such-device": later}))
	for d, want := range map[string]int64{a.ID: later, b.ID: later + 1, c.ID: c.LastSeen} {
		got, err := f.s.Device(f.ctx, d)
		noErr(t, "Device", err)
		if got.LastSeen != want {
			t.Errorf("device %s LastSeen = %d, want %d", d, got.LastSeen, want)
		}
	}
	// Never lowered: an older reading arriving late changes nothing.
	noErr(t, "TouchDevices", f.s.TouchDevices(f.ctx, map[string]int64{a.ID: later - 5_000}))
	if got, _ := f.s.Device(f.ctx, a.ID); got.LastSeen != later {
		t.Errorf("LastSeen lowered to %d, want %d", got.LastSeen, later)
	}
	noErr(t, "TouchDevices(empty)", f.s.TouchDevices(f.ctx, nil))
}

func testTouchDevice(f *fixture) {
	t := f.t
	u := f.user("heidi")
	d := f.device(u, "phone")
	other := f.device(u, "laptop")
	at := f.tick()
	noErr(t, "TouchDevice", f.s.TouchDevice(f.ctx, d.ID, at))
	got, err := f.s.Device(f.ctx, d.ID)
	noErr(t, "Device", err)
	if got.LastSeen != at {
		t.Errorf("LastSeen = %d, want %d", got.LastSeen, at)
	}
	if got, _ := f.s.Device(f.ctx, other.ID); got != other {
		t.Errorf("another device changed: %+v, want %+v", got, other)
	}
	// Pinned: an unknown device is ErrNotFound.
	wantErr(t, "TouchDevice(unknown)", f.s.TouchDevice(f.ctx, "no-such-device", at), chat.ErrNotFound)
}

func testSessionRoundTrip(f *fixture) {
	t := f.t
	u := f.user("ivan")
	d := f.device(u, "phone")
	s := chat.Session{TokenHash: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		UserID: u.ID, DeviceID: d.ID, ExpiresAt: f.tick() + 30*24*3600*1000}
	noErr(t, "CreateSession", f.s.CreateSession(f.ctx, s))
	got, err := f.s.Session(f.ctx, s.TokenHash)
	noErr(t, "Session", err)
	if got != s {
		t.Errorf("Session = %+v, want %+v", got, s)
	}
	_, err = f.s.Session(f.ctx, "no-such-hash")
	wantErr(t, "Session(unknown)", err, chat.ErrNotFound)
}

// sessions creates n sessions of device d and returns them.
func (f *fixture) sessions(d chat.Device, n int) []chat.Session {
	f.t.Helper()
	out := make([]chat.Session, n)
	for i := range out {
		out[i] = chat.Session{TokenHash: f.unique("token-hash"), UserID: d.UserID, DeviceID: d.ID, ExpiresAt: f.tick() + 1e9}
		noErr(f.t, "CreateSession", f.s.CreateSession(f.ctx, out[i]))
	}
	return out
}

func testDeleteSession(f *fixture) {
	t := f.t
	u := f.user("judy")
	ss := f.sessions(f.device(u, "phone"), 2)
	noErr(t, "DeleteSession", f.s.DeleteSession(f.ctx, ss[0].TokenHash))
	_, err := f.s.Session(f.ctx, ss[0].TokenHash)
	wantErr(t, "Session after DeleteSession", err, chat.ErrNotFound)
	if _, err := f.s.Session(f.ctx, ss[1].TokenHash); err != nil {
		t.Errorf("the other session is gone: %v", err)
	}
	noErr(t, "DeleteSession again", f.s.DeleteSession(f.ctx, ss[0].TokenHash))
	noErr(t, "DeleteSession(never existed)", f.s.DeleteSession(f.ctx, "no-such-hash"))
}

func testDeleteDeviceSessions(f *fixture) {
	t := f.t
	u := f.user("mallory")
	phone, laptop := f.device(u, "phone"), f.device(u, "laptop")
	phoneSessions := f.sessions(phone, 3)
	laptopSessions := f.sessions(laptop, 1)

	noErr(t, "DeleteDeviceSessions", f.s.DeleteDeviceSessions(f.ctx, phone.ID))
	for _, s := range phoneSessions {
		_, err := f.s.Session(f.ctx, s.TokenHash)
		wantErr(t, "Session of the revoked device", err, chat.ErrNotFound)
	}
	if _, err := f.s.Session(f.ctx, laptopSessions[0].TokenHash); err != nil {
		t.Errorf("the other device's session is gone: %v", err)
	}
	if _, err := f.s.Device(f.ctx, phone.ID); err != nil {
		t.Errorf("the device itself is gone: %v", err)
	}
	noErr(t, "DeleteDeviceSessions without sessions", f.s.DeleteDeviceSessions(f.ctx, phone.ID))
}

func testPing(f *fixture) {
	noErr(f.t, "Ping", f.s.Ping(f.ctx))
}
