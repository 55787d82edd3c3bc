package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/media"
)

// MediaDeps are what the media endpoints need; without them (SetMedia not
// called) they answer 503.
type MediaDeps struct {
	Blobs     media.Blobs
	Processor *media.Processor
	Uploads   *media.Uploads // resumable uploads; nil: none
	TempDir   string         // where request bodies are spooled
	// MaxUploadBytes is the largest file accepted (100 MB).
	MaxUploadBytes int64
	// Quota is the most bytes of media one user may hold, finished and
	// unfinished uploads together (1 GiB); 0: none.
	Quota int64
	// MaxPendingUploads is the most unfinished resumable uploads one user
	// may have (20); 0: unlimited.
	MaxPendingUploads int
}

// SetMedia enables the media endpoints.
func (g *Gateway) SetMedia(d MediaDeps) { g.media = &d }

// multipartSlack is what a multipart body may carry beyond the file: the
// boundaries and part headers.
const multipartSlack = 64 << 10

// mediaCacheControl: a media item never changes (a new upload is a new id),
// and only the user who fetched it may reuse the copy.
const mediaCacheControl = "private, max-age=31536000, immutable"

// wireMedia is a media item on the wire.
type wireMedia struct {
	MediaID     string `json:"media_id"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
	Thumbnail   string `json:"thumbnail,omitempty"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	DurationMS  int64  `json:"duration_ms,omitempty"`
	Name        string `json:"name,omitempty"`
	Kind        string `json:"kind"`
	CreatedAt   int64  `json:"created_at"`
}

func toWireMedia(m chat.Media) wireMedia {
	return wireMedia{MediaID: m.ID, ContentType: m.ContentType, Size: m.Size, URL: "/api/v1/media/" + url.PathEscape(m.ID),
		Thumbnail: m.Thumbnail, Width: m.Width, Height: m.Height, DurationMS: m.DurationMS, Name: m.Name,
		Kind: chat.MediaKind(m.ContentType), CreatedAt: m.CreatedAt}
}

// mediaReady answers 503 when media is not wired.
func (g *Gateway) mediaReady(w http.ResponseWriter, r *http.Request) bool {
	if g.media == nil {
		g.writeError(w, r, fmt.Errorf("%w: media storage is not configured", chat.ErrUnavailable))
		return false
	}
	if !g.svc.MediaAvailable() {
		g.writeError(w, r, fmt.Errorf("%w: media is not available on this server's store", chat.ErrInvalid))
		return false
	}
	return true
}

// tooLarge is the 413 of an upload.
func (g *Gateway) tooLarge() error {
	return fmt.Errorf("%w: the file is over the limit of %d bytes", chat.ErrTooLarge, g.media.MaxUploadBytes)
}

// cleanName keeps a client's file name fit for a Content-Disposition and
// for display: the last path element, valid UTF-8 without control (Cc: C0,
// DEL, C1) or format characters (Cf: bidi overrides that make
// "\u202egpj.exe" read "exe.jpg", zero-width characters), at most 255 bytes.
func cleanName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, strings.TrimSpace(name))
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "." || name == ".." {
		return ""
	}
	return name
}

// uploadMedia is POST /api/v1/media: the file as the raw body (any
// Content-Type, which is ignored) or as the multipart field "file". The
// body is spooled to a temporary file, never held in memory.
func (g *Gateway) uploadMedia(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if !g.mediaReady(w, r) {
		return
	}
	limit := g.media.MaxUploadBytes
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	multipart := mt == "multipart/form-data"
	bodyLimit := limit
	if multipart {
		bodyLimit += multipartSlack
	}
	// The declared length decides before a byte is read: with "Expect:
	// 100-continue" the client never even sends the body.
	if r.ContentLength > bodyLimit {
		g.writeError(w, r, g.tooLarge())
		return
	}
	if err := g.checkQuota(r.Context(), sess.UserID, max(r.ContentLength, 0), false); err != nil {
		g.writeError(w, r, err)
		return
	}
	slow := newRateReader(w, r.Body)
	defer slow.done()
	body := http.MaxBytesReader(w, slow, bodyLimit)
	var src io.Reader = body
	name := r.URL.Query().Get("name")
	if _, params, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		name = params["filename"]
	}
	if multipart {
		part, err := filePart(r, body)
		if err != nil {
			g.writeError(w, r, g.bodyError(err))
			return
		}
		src, name = part, part.FileName()
	}
	tmp, err := os.CreateTemp(g.media.TempDir, "upload-*")
	if err != nil {
		g.writeError(w, r, fmt.Errorf("%w: %v", chat.ErrUnavailable, err))
		return
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	n, err := io.Copy(tmp, io.LimitReader(src, limit+1))
	if err != nil {
		g.writeError(w, r, g.bodyError(err))
		return
	}
	if n > limit {
		g.writeError(w, r, g.tooLarge())
		return
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		g.writeError(w, r, err)
		return
	}
	m, err := g.storeMedia(r.Context(), sess, g.svc.NewMediaID(), tmp, cleanName(name))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/media/"+url.PathEscape(m.ID))
	writeJSON(w, http.StatusCreated, toWireMedia(m))
}

// bodyError turns a failure reading a request body into its answer.
func (g *Gateway) bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return g.tooLarge()
	}
	if isDomainError(err) {
		return err
	}
	return fmt.Errorf("%w: reading the request body: %v", chat.ErrBadRequest, err)
}

// isDomainError reports whether err carries a status of its own.
func isDomainError(err error) bool {
	for _, s := range []error{chat.ErrBadRequest, chat.ErrTooLarge, chat.ErrInvalid, chat.ErrConflict, chat.ErrNotFound} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// filePart finds the multipart field "file", skipping others.
func filePart(r *http.Request, body io.Reader) (*multipart.Part, error) {
	r.Body = io.NopCloser(body)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("%w: malformed multipart body: %v", chat.ErrBadRequest, err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the multipart body has no field \"file\"", chat.ErrBadRequest)
		}
		if err != nil {
			return nil, err
		}
		if p.FormName() == "file" {
			return p, nil
		}
	}
}

// storeMedia processes a spooled upload, stores its bytes and records it.
// Storing the same media id again (a resumable upload finished twice after
// a crash) returns the recorded item.
func (g *Gateway) storeMedia(ctx context.Context, sess chat.Session, mediaID string, f *os.File, name string) (chat.Media, error) {
	res, err := g.media.Processor.Process(ctx, f)
	if err != nil {
		return chat.Media{}, err
	}
	defer res.Close()
	key := mediaID
	if err := g.media.Blobs.Put(ctx, key, res.File, res.Size, res.ContentType); err != nil {
		return chat.Media{}, err
	}
	m, err := g.svc.AddMedia(ctx, sess, chat.Media{
		ID: mediaID, ContentType: res.ContentType, Size: res.Size, Width: res.Width, Height: res.Height,
		DurationMS: res.DurationMS, Thumbnail: res.Thumbnail, Name: name, BlobKey: key,
	})
	if errors.Is(err, chat.ErrConflict) {
		return g.svc.OwnMedia(ctx, sess, mediaID)
	}
	if err != nil {
		// Unrecorded bytes would never be collected: drop them now.
		if derr := g.media.Blobs.Delete(context.WithoutCancel(ctx), key); derr != nil {
			g.log.Warn("dropping the blob of an unrecorded upload", "key", key, "err", derr)
		}
		return chat.Media{}, err
	}
	return m, nil
}

// mediaSession authenticates a media download: the bearer token, or the
// token query parameter (an <img> or <video> element cannot set headers).
func (g *Gateway) mediaSession(r *http.Request) (chat.Session, error) {
	token := bearerToken(r)
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	return g.svc.Authenticate(r.Context(), token)
}

// getMedia is GET (and HEAD) /api/v1/media/{media_id}: the bytes, with
// Range, conditional requests and caching; 403 for users who may not read
// the item, 404 for unknown ids.
func (g *Gateway) getMedia(w http.ResponseWriter, r *http.Request) {
	if !g.mediaReady(w, r) {
		return
	}
	sess, err := g.mediaSession(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	m, err := g.svc.MediaFor(r.Context(), sess, r.PathValue("media_id"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	blob, _, err := g.media.Blobs.Open(r.Context(), m.BlobKey)
	if err != nil {
		if errors.Is(err, chat.ErrNotFound) {
			err = fmt.Errorf("%w: the bytes of media %q are gone", chat.ErrNotFound, m.ID)
		}
		g.writeError(w, r, err)
		return
	}
	defer blob.Close()
	h := w.Header()
	h.Set("Content-Type", m.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", mediaCacheControl)
	h.Set("ETag", `"`+m.ID+`"`)
	// Nothing served here may run: an HTML or SVG upload opened directly
	// is an inert download, and even then scripts are off.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Disposition", contentDisposition(m))
	http.ServeContent(w, r, "", time.UnixMilli(m.CreatedAt), blob)
}

// contentDisposition is inline for media a browser may show, attachment for
// everything else, with the uploader's file name.
func contentDisposition(m chat.Media) string {
	kind := "attachment"
	if media.Inline(m.ContentType) {
		kind = "inline"
	}
	if m.Name == "" {
		return kind
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": m.Name}); v != "" {
		return v
	}
	return kind
}

// mediaInfo is GET /api/v1/media/{media_id}/info: the item's metadata
// (with the thumbnail), under the same authorization as the bytes.
func (g *Gateway) mediaInfo(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	m, err := g.svc.MediaFor(r.Context(), sess, r.PathValue("media_id"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toWireMedia(m))
}
