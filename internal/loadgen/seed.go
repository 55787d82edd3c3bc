package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/security"
	"github.com/parley-chat/parley/internal/store/sqlite"
)

// HistorySeed sizes the history scenario's data.
type HistorySeed struct {
	Total int // messages stored in all (1,000,000)
	Conv  int // of which in the measured conversation (100,000)
	Convs int // conversations the rest is spread over (9)
}

// historyUser is the account the history scenario reads as; it and
// historyUser+1 share the measured conversation.
func historyUser(i int) string { return fmt.Sprintf("pbh%05d", i) }

// SeedHistory fills the store in dataDir directly (the server must not be
// running): users pbh00000.., the measured direct conversation with
// seed.Conv messages and seed.Total-seed.Conv more messages in other
// conversations, appended with the store's own AppendBatch in large batches
// (the same code path as the server's group commit, so the rows are exactly
// what the server would have written, only faster to produce). It does
// nothing if the measured conversation already holds enough messages.
func SeedHistory(ctx context.Context, dataDir string, seed HistorySeed, log io.Writer) error {
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "parley.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	var ids chat.IDGen
	hash, err := security.NewBcrypt(4).Hash(BenchPassword)
	if err != nil {
		return err
	}
	now := time.Now()
	users := make([]chat.User, 2+2*seed.Convs)
	for i := range users {
		name := historyUser(i)
		u, _, err := st.UserByUsername(ctx, name)
		if errors.Is(err, chat.ErrNotFound) {
			u = chat.User{ID: ids.New(now), Username: name, DisplayName: name, CreatedAt: now.UnixMilli()}
			err = st.CreateUser(ctx, u, hash)
		}
		if err != nil {
			return fmt.Errorf("seeding user %s: %w", name, err)
		}
		users[i] = u
	}
	rest := seed.Total - seed.Conv
	for c := 0; c <= seed.Convs; c++ {
		want := seed.Conv
		if c > 0 {
			want = rest / max(seed.Convs, 1)
		}
		a, b := users[2*c], users[2*c+1]
		ms := now.UnixMilli()
		conv, _, err := st.DirectConversation(ctx, chat.Conversation{ID: ids.New(now), Type: chat.TypeDirect, CreatedAt: ms, UpdatedAt: ms,
			Members: []chat.Member{{UserID: a.ID, Role: chat.RoleMember, JoinedAt: ms}, {UserID: b.ID, Role: chat.RoleMember, JoinedAt: ms}}})
		if err != nil {
			return fmt.Errorf("seeding conversation: %w", err)
		}
		have := conv.LastSeq
		if have >= int64(want) {
			continue
		}
		fmt.Fprintf(log, "seeding %d messages into conversation %d of %d (%s)\n", int64(want)-have, c+1, seed.Convs+1, conv.ID)
		start := time.Now()
		batch := make([]chat.Message, 0, 2000)
		for n := have; n < int64(want); {
			batch = batch[:0]
			for ; len(batch) < cap(batch) && n < int64(want); n++ {
				sender := a
				if n%2 == 1 {
					sender = b
				}
				t := now.Add(time.Duration(n-int64(want)) * time.Second) // one a second, ending now
				batch = append(batch, chat.Message{
					ID: ids.New(t), ConversationID: conv.ID, SenderID: sender.ID, SenderDeviceID: "seed",
					ContentType: chat.ContentText, Content: fmt.Sprintf("%d %s", t.UnixNano(), padding), Timestamp: t.UnixMilli(),
				})
			}
			res, err := st.AppendBatch(ctx, batch)
			if err != nil {
				return fmt.Errorf("seeding messages: %w", err)
			}
			for _, r := range res {
				if r.Err != nil {
					return fmt.Errorf("seeding messages: %w", r.Err)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		el := time.Since(start)
		fmt.Fprintf(log, "  %d messages in %s (%.0f msgs/s)\n", int64(want)-have, el.Round(time.Millisecond), float64(int64(want)-have)/el.Seconds())
	}
	return nil
}
