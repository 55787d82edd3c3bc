package chat

import (
	"context"
	"errors"
	"strings"
	"time"
)

// MediaStore is the catalogue of uploaded media (photos, videos, voice
// notes, files): metadata only; the bytes live in blob storage. It is an
// optional ability of a Store, found by type assertion.
//
// The send path and garbage collection meet here. A message may reference
// a media item (Message.MediaID), and collection deletes items that no
// stored message references. A store that implements MediaStore keeps two
// promises so that the two never race:
//
//   - DeleteUnreferencedMedia checks for a referencing message in the same
//     transaction as the delete, so it never deletes referenced media;
//   - a deleted item leaves a tombstone, and AppendBatch refuses (ErrInvalid,
//     in the message's own transaction) a message whose MediaID names a
//     tombstoned item, so a send that was checked before the delete and
//     committed after it fails instead of pointing at deleted bytes.
//
// Tombstones deleted before the before argument of DeleteUnreferencedMedia
// may be purged (a send is committed within seconds of its check, and
// before lags the clock by the collection age, hours).
type MediaStore interface {
	// CreateMedia stores a new item; ErrConflict if the id exists.
	CreateMedia(ctx context.Context, m Media) error
	// Media returns an item; ErrNotFound for unknown and deleted ids.
	Media(ctx context.Context, id string) (Media, error)
	// CanReadMedia reports whether userID may read an item: it uploaded it,
	// or it is a member of a conversation where a stored message references
	// it. ErrNotFound for unknown and deleted ids.
	CanReadMedia(ctx context.Context, mediaID, userID string) (bool, error)
	// UnreferencedMedia lists up to limit items created before before (ms)
	// that no stored message references, oldest first.
	UnreferencedMedia(ctx context.Context, before int64, limit int) ([]Media, error)
	// DeleteUnreferencedMedia deletes an item, leaving a tombstone stamped
	// now, if it was created before before and no stored message references
	// it, all in one transaction; it reports whether it deleted the item.
	DeleteUnreferencedMedia(ctx context.Context, id string, before, now int64) (bool, error)
}

// Media is an uploaded item's metadata.
type Media struct {
	ID          string
	UploaderID  string
	ContentType string // decided by the server from the bytes, e.g. "image/jpeg"
	Size        int64  // bytes as stored (after metadata was stripped)
	Width       int    // pixels as displayed (EXIF orientation applied); 0 unknown
	Height      int
	DurationMS  int64  // audio and video, when known
	Thumbnail   string // a data: URL, "" for none
	Name        string // the file name the uploader gave, "" for none
	BlobKey     string // where the bytes are in blob storage
	CreatedAt   int64  // ms since the epoch
}

// MediaKind is the message content_type that fits a media content type:
// image, video, voice (any audio) or file.
func MediaKind(contentType string) string {
	switch {
	case strings.HasPrefix(contentType, "image/"):
		return ContentImage
	case strings.HasPrefix(contentType, "video/"):
		return ContentVideo
	case strings.HasPrefix(contentType, "audio/"):
		return ContentVoice
	}
	return ContentFile
}

// errNoMedia is returned when the store keeps no media catalogue.
var errNoMedia = errf(ErrInvalid, "media is not available on this server's store")

// mediaStore returns the store's media catalogue.
func (s *Service) mediaStore() (MediaStore, error) {
	if ms, ok := s.store.(MediaStore); ok {
		return ms, nil
	}
	return nil, errNoMedia
}

// MediaAvailable reports whether the store keeps a media catalogue.
func (s *Service) MediaAvailable() bool {
	_, err := s.mediaStore()
	return err == nil
}

// NewMediaID issues a media id (a ULID), to name the blob before the item
// is recorded.
func (s *Service) NewMediaID() string { return s.ids.New(s.now()) }

// AddMedia records an item uploaded by the caller, whose bytes are already
// in blob storage under m.BlobKey. m.ID must come from NewMediaID.
func (s *Service) AddMedia(ctx context.Context, sess Session, m Media) (Media, error) {
	ms, err := s.mediaStore()
	if err != nil {
		return Media{}, err
	}
	if m.ID == "" || m.BlobKey == "" {
		return Media{}, errf(ErrBadRequest, "media id and blob key are required")
	}
	m.UploaderID = sess.UserID
	if m.CreatedAt == 0 {
		m.CreatedAt = s.now().UnixMilli()
	}
	if err := ms.CreateMedia(ctx, m); err != nil {
		return Media{}, err
	}
	return m, nil
}

// OwnMedia returns an item the caller uploaded (ErrNotFound otherwise): an
// upload that finished before a crash is looked up again this way.
func (s *Service) OwnMedia(ctx context.Context, sess Session, id string) (Media, error) {
	ms, err := s.mediaStore()
	if err != nil {
		return Media{}, err
	}
	m, err := ms.Media(ctx, id)
	if err == nil && m.UploaderID != sess.UserID {
		err = ErrNotFound
	}
	if errors.Is(err, ErrNotFound) {
		return Media{}, errf(ErrNotFound, "no media %q", id)
	}
	return m, err
}

// MediaFor returns an item the caller may read: its uploader, or a member of
// a conversation where a message references it. ErrNotFound for unknown
// ids, ErrForbidden for others.
func (s *Service) MediaFor(ctx context.Context, sess Session, id string) (Media, error) {
	ms, err := s.mediaStore()
	if err != nil {
		return Media{}, err
	}
	m, err := ms.Media(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Media{}, errf(ErrNotFound, "no media %q", id)
	}
	if err != nil || m.UploaderID == sess.UserID {
		return m, err
	}
	ok, err := ms.CanReadMedia(ctx, id, sess.UserID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Media{}, errf(ErrNotFound, "no media %q", id)
	case err != nil:
		return Media{}, err
	case !ok:
		return Media{}, errf(ErrForbidden, "this media is not shared with you")
	}
	return m, nil
}

// checkMediaRef is the send path's media check: a message that names a
// media id (any content type: a reference grants the conversation's members
// read access) must name one the sender uploaded, else ErrInvalid (422).
// Media content types require a media id (validateSend says 400). The item's
// description (thumbnail included) is kept in req for the message, except
// for e2ee messages, which carry no preview in clear.
//
// The item may still be collected between this check and the commit; the
// store's tombstone then refuses the message in its own transaction (see
// MediaStore).
func (s *Service) checkMediaRef(ctx context.Context, sess Session, req *SendRequest) error {
	if req.MediaID == "" {
		return nil
	}
	ms, err := s.mediaStore()
	if err != nil {
		return err
	}
	m, err := ms.Media(ctx, req.MediaID)
	switch {
	case errors.Is(err, ErrNotFound):
		return errf(ErrInvalid, "media_id %q names no uploaded media", req.MediaID)
	case err != nil:
		return err
	case m.UploaderID != sess.UserID:
		return errf(ErrInvalid, "media_id %q was uploaded by another user; upload it yourself to share it", req.MediaID)
	}
	if req.ContentType != ContentE2EE {
		req.media = &MediaInfo{ContentType: m.ContentType, Size: m.Size, Width: m.Width, Height: m.Height,
			DurationMS: m.DurationMS, Name: m.Name, Thumbnail: m.Thumbnail}
	}
	return nil
}

// CollectMedia deletes (in the store) up to limit items older than
// olderThan that no message references, and returns them so the caller can
// delete their blobs. Each delete re-checks the references in its own
// transaction, so an item referenced since it was listed is kept.
func (s *Service) CollectMedia(ctx context.Context, olderThan time.Duration, limit int) ([]Media, error) {
	ms, err := s.mediaStore()
	if err != nil {
		return nil, err
	}
	now := s.now()
	before := now.Add(-olderThan).UnixMilli()
	cands, err := ms.UnreferencedMedia(ctx, before, limit)
	if err != nil {
		return nil, err
	}
	var out []Media
	for _, m := range cands {
		ok, err := ms.DeleteUnreferencedMedia(ctx, m.ID, before, now.UnixMilli())
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}
