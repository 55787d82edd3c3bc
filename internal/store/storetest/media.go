package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
)

// RunMediaStore is the conformance suite of chat.MediaStore, the optional
// media catalogue of a Store. open must return stores that implement it.
func RunMediaStore(t *testing.T, open func(t *testing.T) chat.Store) {
	for _, tc := range mediaTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if _, ok := s.(chat.MediaStore); !ok {
				t.Fatalf("%T does not implement chat.MediaStore", s)
			}
			tc.run(newFixture(t, s))
		})
	}
}

func (f *fixture) media() chat.MediaStore { return f.s.(chat.MediaStore) }

// upload records a media item of u created now.
func (f *fixture) upload(u chat.User) chat.Media {
	f.t.Helper()
	id := f.id()
	m := chat.Media{ID: id, UploaderID: u.ID, ContentType: "image/png", Size: 1234, Width: 640, Height: 480,
		DurationMS: 0, Thumbnail: "data:image/jpeg;base64,AAAA", Name: "cat ☺.png", BlobKey: "blob-" + id, CreatedAt: f.tick()}
	if err := f.media().CreateMedia(f.ctx, m); err != nil {
		f.t.Fatalf("CreateMedia: %v", err)
	}
	return m
}

// mediaMsg builds a message from u referencing mediaID.
func (f *fixture) mediaMsg(convID string, from chat.User, mediaID string) chat.Message {
	m := f.msg(convID, from, "")
	m.ContentType, m.MediaID = chat.ContentImage, mediaID
	return m
}

func (f *fixture) canRead(mediaID string, u chat.User) bool {
	f.t.Helper()
	ok, err := f.media().CanReadMedia(f.ctx, mediaID, u.ID)
	noErr(f.t, "CanReadMedia", err)
	return ok
}

func (f *fixture) garbage(before int64) []string {
	f.t.Helper()
	ms, err := f.media().UnreferencedMedia(f.ctx, before, 100)
	noErr(f.t, "UnreferencedMedia", err)
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func (f *fixture) deleteMedia(id string, before int64) bool {
	f.t.Helper()
	ok, err := f.media().DeleteUnreferencedMedia(f.ctx, id, before, f.tick())
	noErr(f.t, "DeleteUnreferencedMedia", err)
	return ok
}

var mediaTests = []test{
	{"CreateAndGetRoundTrip", func(f *fixture) {
		u := f.user("malice")
		m := f.upload(u)
		got, err := f.media().Media(f.ctx, m.ID)
		noErr(f.t, "Media", err)
		if got != m {
			f.t.Fatalf("Media = %+v, want %+v", got, m)
		}
		_, err = f.media().Media(f.ctx, "no-such-media")
		wantErr(f.t, "Media(unknown)", err, chat.ErrNotFound)
		wantErr(f.t, "CreateMedia(same id)", f.media().CreateMedia(f.ctx, m), chat.ErrConflict)
	}},
	{"CanReadUploaderAndMembersOfReferencingConversations", func(f *fixture) {
		alice, bob, carol, dave := f.user("alice"), f.user("bob"), f.user("carol"), f.user("dave")
		m := f.upload(alice)
		if !f.canRead(m.ID, alice) {
			f.t.Fatal("the uploader cannot read its media")
		}
		g := f.group("g", alice, bob, carol)
		if f.canRead(m.ID, bob) {
			f.t.Fatal("bob reads media no message references")
		}
		f.direct(alice, dave)
		f.appendOK(f.mediaMsg(g.ID, alice, m.ID))
		if !f.canRead(m.ID, bob) || !f.canRead(m.ID, carol) {
			f.t.Fatal("members of the referencing group cannot read the media")
		}
		if f.canRead(m.ID, dave) {
			f.t.Fatal("dave, in another conversation with alice, reads the media")
		}
		noErr(f.t, "RemoveMember", f.s.RemoveMember(f.ctx, g.ID, carol.ID, f.tick()))
		if f.canRead(m.ID, carol) {
			f.t.Fatal("a member who left still reads the media")
		}
		_, err := f.media().CanReadMedia(f.ctx, "no-such-media", alice.ID)
		wantErr(f.t, "CanReadMedia(unknown)", err, chat.ErrNotFound)
	}},
	{"UnreferencedListsOldUnreferencedOldestFirst", func(f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		c := f.direct(alice, bob)
		old1, old2, used := f.upload(alice), f.upload(bob), f.upload(alice)
		cut := f.tick()
		f.upload(alice) // too young
		f.appendOK(f.mediaMsg(c.ID, alice, used.ID))
		if got, want := f.garbage(cut), []string{old1.ID, old2.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
			f.t.Fatalf("UnreferencedMedia = %v, want %v", got, want)
		}
		ms, err := f.media().UnreferencedMedia(f.ctx, cut, 1)
		noErr(f.t, "UnreferencedMedia(limit 1)", err)
		if len(ms) != 1 || ms[0] != old1 {
			f.t.Fatalf("UnreferencedMedia(limit 1) = %+v, want [%+v]", ms, old1)
		}
	}},
	{"DeleteOnlyUnreferencedAndOld", func(f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		c := f.direct(alice, bob)
		garbage, used := f.upload(alice), f.upload(alice)
		cut := f.tick()
		young := f.upload(alice)
		f.appendOK(f.mediaMsg(c.ID, alice, used.ID))
		if f.deleteMedia(used.ID, cut) {
			f.t.Fatal("deleted media a message references")
		}
		if f.deleteMedia(young.ID, cut) {
			f.t.Fatal("deleted media younger than before")
		}
		if f.deleteMedia("no-such-media", cut) {
			f.t.Fatal("deleted unknown media")
		}
		if !f.deleteMedia(garbage.ID, cut) {
			f.t.Fatal("did not delete old unreferenced media")
		}
		if f.deleteMedia(garbage.ID, cut) {
			f.t.Fatal("deleted the same media twice")
		}
		_, err := f.media().Media(f.ctx, garbage.ID)
		wantErr(f.t, "Media(deleted)", err, chat.ErrNotFound)
		_, err = f.media().CanReadMedia(f.ctx, garbage.ID, alice.ID)
		wantErr(f.t, "CanReadMedia(deleted)", err, chat.ErrNotFound)
		for _, m := range []chat.Media{used, young} {
			if _, err := f.media().Media(f.ctx, m.ID); err != nil {
				f.t.Fatalf("Media(%s) after collection: %v", m.ID, err)
			}
		}
		if got := f.garbage(f.tick()); fmt.Sprint(got) != fmt.Sprint([]string{young.ID}) {
			f.t.Fatalf("UnreferencedMedia after collection = %v, want [%s]", got, young.ID)
		}
	}},
	{"AppendRefusesMessagesReferencingDeletedMedia", func(f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		c := f.direct(alice, bob)
		gone := f.upload(alice)
		if !f.deleteMedia(gone.ID, f.tick()) {
			f.t.Fatal("setup: media not deleted")
		}
		res, err := f.s.AppendBatch(f.ctx, []chat.Message{
			f.mediaMsg(c.ID, alice, gone.ID),
			f.msg(c.ID, alice, "still fine"),
		})
		noErr(f.t, "AppendBatch", err)
		wantErr(f.t, "message referencing deleted media", res[0].Err, chat.ErrInvalid)
		if res[1].Err != nil || res[1].Message.Seq != 1 {
			f.t.Fatalf("the other message of the batch: %+v", res[1])
		}
	}},
	{"ConcurrentSendsAndCollectionNeverLoseReferencedMedia", func(f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		c := f.direct(alice, bob)
		const n = 40
		items := make([]chat.Media, n)
		for i := range items {
			items[i] = f.upload(alice)
		}
		cut := f.tick()
		var wg sync.WaitGroup
		sent := make([]chat.AppendResult, n)
		deleted := make([]bool, n)
		for i := range items {
			wg.Add(2)
			msg := f.mediaMsg(c.ID, alice, items[i].ID)
			now := f.tick()
			go func() {
				defer wg.Done()
				res, err := f.s.AppendBatch(f.ctx, []chat.Message{msg})
				if err != nil {
					f.t.Errorf("AppendBatch: %v", err)
					return
				}
				sent[i] = res[0]
			}()
			go func() {
				defer wg.Done()
				ok, err := f.media().DeleteUnreferencedMedia(f.ctx, items[i].ID, cut, now)
				if err != nil {
					f.t.Errorf("DeleteUnreferencedMedia: %v", err)
				}
				deleted[i] = ok
			}()
		}
		wg.Wait()
		for i := range items {
			switch stored := sent[i].Err == nil; {
			case stored && deleted[i]:
				f.t.Errorf("item %d: a message references it and it was deleted", i)
			case !stored && !deleted[i]:
				f.t.Errorf("item %d: neither stored nor deleted: %v", i, sent[i].Err)
			case !stored:
				wantErr(f.t, "refused message", sent[i].Err, chat.ErrInvalid)
			}
		}
	}},
}
