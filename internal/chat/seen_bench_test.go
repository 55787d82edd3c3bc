package chat_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/bus/local"
	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// BenchmarkDevicesSeen compares recording last_seen for a storm of closing
// sockets one transaction each (the store directly) with the service's
// coalesced path, which the gateway uses.
//
//	go test -run '^$' -bench DevicesSeen -benchtime 5000x ./internal/chat
func BenchmarkDevicesSeen(b *testing.B) {
	for _, coalesced := range []bool{false, true} {
		b.Run(fmt.Sprintf("coalesced=%v", coalesced), func(b *testing.B) {
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "seen.db"), sqlite.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			cs := &countingStore{Store: st}
			svc := chat.NewService(chat.Config{}, chat.Deps{Store: cs, Bus: local.New(), Hasher: security.NewBcrypt(4)})
			if _, err := svc.Register(ctx, "storm", "password1", ""); err != nil {
				b.Fatal(err)
			}
			devs := make([]string, 256)
			for i := range devs {
				res, err := svc.Login(ctx, "storm", "password1", "d", "")
				if err != nil {
					b.Fatal(err)
				}
				devs[i] = res.Session.DeviceID
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := w; i < b.N; i += 64 {
						var err error
						if coalesced {
							err = svc.DeviceSeen(ctx, devs[i%len(devs)])
						} else {
							err = st.TouchDevice(ctx, devs[i%len(devs)], int64(i))
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			svc.Close() // waits until the coalesced writes are done
			b.StopTimer()
		})
	}
}
