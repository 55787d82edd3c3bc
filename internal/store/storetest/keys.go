package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// RunKeyStore is the conformance suite of chat.KeyStore, the optional key
// directory of a Store. open must return stores that implement it.
func RunKeyStore(t *testing.T, open func(t *testing.T) chat.Store) {
	runAbility(t, open, keyTests, "chat.KeyStore", func(s chat.Store) bool { _, ok := s.(chat.KeyStore); return ok })
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// deviceKeys builds an upload for d with one-time prekeys ids first..first+n-1.
func deviceKeys(d chat.Device, identity byte, first, n int) chat.DeviceKeys {
	k := chat.DeviceKeys{UserID: d.UserID, DeviceID: d.ID, IdentityKey: key(identity), SigningKey: key(identity + 1),
		SignedPreKey: chat.SignedPreKey{KeyID: 1, PublicKey: key(identity + 2), Signature: bytes.Repeat([]byte{9}, 64)}}
	for i := first; i < first+n; i++ {
		k.OneTimePreKeys = append(k.OneTimePreKeys, chat.PreKey{KeyID: int64(i), PublicKey: key(byte(i))})
	}
	return k
}

func (f *fixture) keys() chat.KeyStore { return f.s.(chat.KeyStore) }

func (f *fixture) putKeys(k chat.DeviceKeys) {
	f.t.Helper()
	if err := f.keys().PutKeys(f.ctx, k); err != nil {
		f.t.Fatalf("PutKeys: %v", err)
	}
}

func (f *fixture) prekeyCount(deviceID string) int {
	f.t.Helper()
	n, err := f.keys().PrekeyCount(f.ctx, deviceID)
	if err != nil {
		f.t.Fatalf("PrekeyCount: %v", err)
	}
	return n
}

var keyTests = []test{
	{"ClaimReturnsEveryDeviceAndTakesOnePrekeyEach", func(f *fixture) {
		u := f.user("kalice")
		phone, laptop := f.device(u, "phone"), f.device(u, "laptop")
		f.device(u, "no keys")
		f.putKeys(deviceKeys(phone, 10, 1, 2))
		f.putKeys(deviceKeys(laptop, 20, 1, 1))
		got, err := f.keys().ClaimKeys(f.ctx, u.ID)
		if err != nil || len(got) != 2 {
			f.t.Fatalf("ClaimKeys = %d bundles, %v; want 2", len(got), err)
		}
		for _, b := range got {
			want := map[string]byte{phone.ID: 10, laptop.ID: 20}[b.DeviceID]
			if !bytes.Equal(b.IdentityKey, key(want)) || !bytes.Equal(b.SignedPreKey.PublicKey, key(want+2)) || b.SignedPreKey.KeyID != 1 || len(b.SignedPreKey.Signature) != 64 {
				f.t.Fatalf("bundle of %s wrong: %+v", b.DeviceID, b)
			}
			if b.OneTimePreKey == nil || b.OneTimePreKey.KeyID != 1 {
				f.t.Fatalf("bundle of %s: one-time prekey %+v, want key 1", b.DeviceID, b.OneTimePreKey)
			}
		}
		if n := f.prekeyCount(phone.ID); n != 1 {
			f.t.Fatalf("phone has %d prekeys after a claim, want 1", n)
		}
		got, _ = f.keys().ClaimKeys(f.ctx, u.ID)
		for _, b := range got {
			if b.DeviceID == laptop.ID && b.OneTimePreKey != nil {
				f.t.Fatalf("laptop's only prekey handed out twice: %+v", b.OneTimePreKey)
			}
			if b.DeviceID == phone.ID && (b.OneTimePreKey == nil || b.OneTimePreKey.KeyID != 2) {
				f.t.Fatalf("phone's second claim: %+v", b.OneTimePreKey)
			}
		}
	}},
	{"ConcurrentClaimsNeverShareAPrekey", func(f *fixture) {
		u := f.user("kbob")
		d := f.device(u, "phone")
		f.putKeys(deviceKeys(d, 30, 1, 10))
		var mu sync.Mutex
		seen := map[int64]int{}
		nils := 0
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := f.keys().ClaimKeys(f.ctx, u.ID)
				if err != nil || len(got) != 1 {
					f.t.Errorf("ClaimKeys: %d bundles, %v", len(got), err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if p := got[0].OneTimePreKey; p != nil {
					seen[p.KeyID]++
				} else {
					nils++
				}
			}()
		}
		wg.Wait()
		if len(seen) != 10 || nils != 10 {
			f.t.Fatalf("20 claims of 10 prekeys: %d distinct handed out, %d without: %v", len(seen), nils, seen)
		}
		for id, n := range seen {
			if n != 1 {
				f.t.Fatalf("prekey %d handed out %d times", id, n)
			}
		}
	}},
	{"UploadAddsPrekeysAndKeepsExistingIDs", func(f *fixture) {
		u := f.user("kcarol")
		d := f.device(u, "phone")
		f.putKeys(deviceKeys(d, 40, 1, 3))
		f.putKeys(deviceKeys(d, 40, 3, 3)) // ids 3..5: 3 exists
		if n := f.prekeyCount(d.ID); n != 5 {
			f.t.Fatalf("%d prekeys, want 5", n)
		}
	}},
	{"NewIdentityDropsOldPrekeys", func(f *fixture) {
		u := f.user("kdave")
		d := f.device(u, "phone")
		f.putKeys(deviceKeys(d, 50, 1, 3))
		f.putKeys(deviceKeys(d, 60, 100, 2))
		if n := f.prekeyCount(d.ID); n != 2 {
			f.t.Fatalf("%d prekeys after a new identity, want 2", n)
		}
		got, _ := f.keys().ClaimKeys(f.ctx, u.ID)
		if len(got) != 1 || !bytes.Equal(got[0].IdentityKey, key(60)) || got[0].OneTimePreKey.KeyID != 100 {
			f.t.Fatalf("after a new identity: %+v", got)
		}
	}},
	{"KeyedDevicesAndDelete", func(f *fixture) {
		a, b, c := f.user("keve"), f.user("kfrank"), f.user("kgina")
		da1, da2, db := f.device(a, "1"), f.device(a, "2"), f.device(b, "1")
		f.device(c, "no keys")
		for i, d := range []chat.Device{da1, da2, db} {
			f.putKeys(deviceKeys(d, byte(70+10*i), 1, 1))
		}
		got, err := f.keys().KeyedDevices(f.ctx, []string{a.ID, b.ID, c.ID})
		if err != nil || len(got) != 3 {
			f.t.Fatalf("KeyedDevices = %v, %v", got, err)
		}
		want := map[string]string{da1.ID: a.ID, da2.ID: a.ID, db.ID: b.ID}
		for _, r := range got {
			if want[r.DeviceID] != r.UserID {
				f.t.Fatalf("unexpected %+v", r)
			}
		}
		if err := f.keys().DeleteKeys(f.ctx, da1.ID); err != nil {
			f.t.Fatal(err)
		}
		got, _ = f.keys().KeyedDevices(f.ctx, []string{a.ID})
		if len(got) != 1 || got[0].DeviceID != da2.ID {
			f.t.Fatalf("after delete: %v", got)
		}
		if n := f.prekeyCount(da1.ID); n != 0 {
			f.t.Fatalf("deleted device still has %d prekeys", n)
		}
		if got, _ := f.keys().KeyedDevices(f.ctx, nil); len(got) != 0 {
			f.t.Fatalf("no users: %v", got)
		}
	}},
	{"UnknownUserHasNoBundles", func(f *fixture) {
		got, err := f.keys().ClaimKeys(f.ctx, fmt.Sprint("nobody-", f.id()))
		if err != nil || len(got) != 0 {
			f.t.Fatalf("ClaimKeys(unknown) = %v, %v", got, err)
		}
	}},
}
