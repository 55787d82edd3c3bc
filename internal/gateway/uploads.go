package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/media"
)

// Resumable uploads: the tus 1.0 core protocol with the creation,
// creation-with-upload and termination extensions, at /api/v1/uploads.
// See docs/protocol.md ("Media").

const (
	tusVersion = "1.0.0"
	// tusOffsetType is the only PATCH body type tus allows.
	tusOffsetType = "application/offset+octet-stream"
	// uploadIdle is how long a PATCH body may stall before the server gives
	// up on the connection (the client resumes with HEAD and PATCH).
	uploadIdle = 60 * time.Second
	// lockWait is how long a request waits for an older request on the
	// same upload to let go after interrupting it.
	lockWait = 5 * time.Second
	// finishTimeout bounds turning a complete upload into media.
	finishTimeout = 5 * time.Minute
	// HeaderMediaID names the media item a finished upload became.
	HeaderMediaID = "Parley-Media-Id"
)

// tusHeaders sets the headers of every tus answer.
func tusHeaders(w http.ResponseWriter) {
	w.Header().Set("Tus-Resumable", tusVersion)
	w.Header().Set("Cache-Control", "no-store")
}

// tusUploads checks that resumable uploads are wired and the client speaks
// tus 1.0 (412 otherwise, as tus requires).
func (g *Gateway) tusUploads(w http.ResponseWriter, r *http.Request) bool {
	tusHeaders(w)
	if !g.mediaReady(w, r) {
		return false
	}
	if g.media.Uploads == nil {
		g.writeError(w, r, fmt.Errorf("%w: resumable uploads are not configured", chat.ErrUnavailable))
		return false
	}
	if v := r.Header.Get("Tus-Resumable"); v != tusVersion {
		w.Header().Set("Tus-Version", tusVersion)
		writeJSONError(w, http.StatusPreconditionFailed, "bad_request", fmt.Sprintf("Tus-Resumable must be %s, not %q", tusVersion, v))
		return false
	}
	return true
}

// tusOptions is OPTIONS /api/v1/uploads: what this server supports.
func (g *Gateway) tusOptions(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Tus-Resumable", tusVersion)
	h.Set("Tus-Version", tusVersion)
	h.Set("Tus-Extension", "creation,creation-with-upload,termination")
	if g.media != nil {
		h.Set("Tus-Max-Size", strconv.FormatInt(g.media.MaxUploadBytes, 10))
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseTusMetadata reads Upload-Metadata: "key base64value,key2 ...".
func parseTusMetadata(h string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(h, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, " ")
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || k == "" {
			return nil, fmt.Errorf("%w: Upload-Metadata is not \"key base64,...\"", chat.ErrBadRequest)
		}
		out[k] = string(b)
	}
	return out, nil
}

// createUpload is POST /api/v1/uploads (tus creation): Upload-Length is
// required, at most the upload limit (413 at once otherwise); the answer is
// 201 with Location. A body of type application/offset+octet-stream is
// appended at once (creation-with-upload).
func (g *Gateway) createUpload(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if !g.tusUploads(w, r) {
		return
	}
	length, err := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
	switch {
	case r.Header.Get("Upload-Defer-Length") != "":
		err = fmt.Errorf("%w: Upload-Defer-Length is not supported; send Upload-Length", chat.ErrBadRequest)
	case err != nil || length < 0:
		err = fmt.Errorf("%w: Upload-Length must be a byte count", chat.ErrBadRequest)
	case length > g.media.MaxUploadBytes:
		err = g.tooLarge()
	case length == 0:
		err = fmt.Errorf("%w: the file is empty", chat.ErrInvalid)
	}
	var meta map[string]string
	if err == nil {
		meta, err = parseTusMetadata(r.Header.Get("Upload-Metadata"))
	}
	unlock := g.quota.lock(sess.UserID) // held until the upload exists
	if err == nil {
		err = g.checkQuota(r.Context(), sess.UserID, length, true)
	}
	if err != nil {
		unlock()
		g.writeError(w, r, err)
		return
	}
	kept := map[string]string{}
	for _, k := range []string{"filename", "name"} {
		if v := cleanName(meta[k]); v != "" {
			kept["filename"] = v
			break
		}
	}
	info, err := g.media.Uploads.Create(sess.UserID, length, kept, g.svc.NewMediaID(), g.svc.Now())
	unlock()
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/uploads/"+g.uploadID(info.ID))
	if r.Header.Get("Content-Type") != tusOffsetType {
		w.Header().Set("Upload-Offset", "0")
		w.WriteHeader(http.StatusCreated)
		return
	}
	g.patch(w, r, sess, info.ID, 0, http.StatusCreated)
}

// upload returns the caller's upload (404 for another user's).
func (g *Gateway) upload(sess chat.Session, id string) (media.UploadInfo, error) {
	info, err := g.media.Uploads.Get(id)
	if err == nil && info.Owner != sess.UserID {
		err = media.ErrUploadNotFound
	}
	return info, err
}

// headUpload is HEAD /api/v1/uploads/{id}: Upload-Offset and Upload-Length;
// once the upload became media, its id in Parley-Media-Id.
func (g *Gateway) headUpload(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if !g.tusUploads(w, r) {
		return
	}
	info, err := g.upload(sess, r.PathValue("id"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Upload-Offset", strconv.FormatInt(info.Offset, 10))
	h.Set("Upload-Length", strconv.FormatInt(info.Length, 10))
	if info.Done {
		h.Set(HeaderMediaID, info.MediaID)
	}
	w.WriteHeader(http.StatusOK)
}

// patchUpload is PATCH /api/v1/uploads/{id}: appends the body at
// Upload-Offset (409 if that is not the upload's offset; 415 for another
// body type). The answer is 204 with the new Upload-Offset; the request
// that completes the upload turns it into a media item first and names it
// in Parley-Media-Id.
func (g *Gateway) patchUpload(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if !g.tusUploads(w, r) {
		return
	}
	if r.Header.Get("Content-Type") != tusOffsetType {
		writeJSONError(w, http.StatusUnsupportedMediaType, "bad_request", "Content-Type must be "+tusOffsetType)
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		g.writeError(w, r, fmt.Errorf("%w: Upload-Offset must be a byte offset", chat.ErrBadRequest))
		return
	}
	g.patch(w, r, sess, r.PathValue("id"), offset, http.StatusNoContent)
}

// stallReader fails a read that waits longer than idle, so a connection
// that died silently does not hold its upload forever, and tells the lock
// when bytes arrive.
type stallReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	held *media.Held
}

func (s *stallReader) Read(p []byte) (int, error) {
	_ = s.rc.SetReadDeadline(time.Now().Add(s.idle))
	n, err := s.r.Read(p)
	if n > 0 {
		s.held.Active()
	}
	return n, err
}

// patch appends the request body to an upload at offset and answers.
func (g *Gateway) patch(w http.ResponseWriter, r *http.Request, sess chat.Session, id string, offset int64, status int) {
	if _, err := g.upload(sess, id); err != nil {
		g.writeError(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	// A request still holding this upload but receiving nothing is a
	// connection the client gave up on: its read is stopped, and this one
	// takes over (see media.StaleAfter).
	held, err := g.media.Uploads.Lock(r.Context(), id, func() { _ = rc.SetReadDeadline(time.Now()) }, lockWait)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	defer held.Unlock()
	info, err := g.upload(sess, id)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if info.Done && offset == info.Length {
		// The last PATCH was repeated: its answer was lost.
		g.tusDone(w, info, status)
		return
	}
	if r.ContentLength > info.Length-offset {
		g.writeError(w, r, fmt.Errorf("%w: the body goes past the declared Upload-Length %d", chat.ErrBadRequest, info.Length))
		return
	}
	slow := newRateReader(w, r.Body)
	n, err := g.media.Uploads.Append(id, offset, &stallReader{r: slow, rc: rc, idle: uploadIdle, held: held})
	slow.done()
	var mismatch *media.OffsetMismatchError
	if errors.As(err, &mismatch) {
		w.Header().Set("Upload-Offset", strconv.FormatInt(mismatch.Offset, 10))
		g.writeError(w, r, err)
		return
	}
	if terr := g.media.Uploads.Touch(info, g.svc.Now()); terr != nil && err == nil {
		err = terr
	}
	if err != nil {
		// What arrived is kept: the client asks HEAD and resumes from there.
		// A body that broke off (or was interrupted) is a 409, which tus
		// clients answer with HEAD and a new PATCH.
		w.Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
		if !isDomainError(err) {
			err = fmt.Errorf("%w: the body broke off at offset %d (%v); resume from there", chat.ErrConflict, n, err)
		}
		g.writeError(w, r, err)
		return
	}
	if n < info.Length {
		w.Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
		w.WriteHeader(status)
		return
	}
	// The bytes are all here: finish even if the client goes away now (it
	// learns the media id from HEAD or GET later).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), finishTimeout)
	defer cancel()
	if err := g.finishUpload(fctx, sess, info); err != nil {
		g.writeError(w, r, err)
		return
	}
	info.Done = true
	g.tusDone(w, info, status)
}

// tusDone answers for a finished upload.
func (g *Gateway) tusDone(w http.ResponseWriter, info media.UploadInfo, status int) {
	w.Header().Set("Upload-Offset", strconv.FormatInt(info.Length, 10))
	w.Header().Set(HeaderMediaID, info.MediaID)
	w.WriteHeader(status)
}

// finishUpload turns a complete upload into its media item, then drops the
// bytes. A file that cannot become media (an empty or broken image) is
// removed; other failures leave the upload complete, and a PATCH with no
// body at its end offset tries again.
func (g *Gateway) finishUpload(ctx context.Context, sess chat.Session, info media.UploadInfo) error {
	f, err := g.media.Uploads.Data(info.ID)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = g.storeMedia(ctx, sess, info.MediaID, f, info.Metadata["filename"])
	if errors.Is(err, chat.ErrInvalid) || errors.Is(err, chat.ErrTooLarge) {
		if rerr := g.media.Uploads.Remove(info.ID); rerr != nil {
			g.log.Warn("removing a refused upload", "upload", info.ID, "err", rerr)
		}
		return err
	}
	if err != nil {
		return err
	}
	return g.media.Uploads.MarkDone(info, g.svc.Now())
}

// deleteUpload is DELETE /api/v1/uploads/{id} (tus termination): 204. A
// finished upload's media item stays (it is collected if never sent).
func (g *Gateway) deleteUpload(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	if !g.tusUploads(w, r) {
		return
	}
	id := r.PathValue("id")
	if _, err := g.upload(sess, id); err != nil {
		g.writeError(w, r, err)
		return
	}
	held, err := g.media.Uploads.Lock(r.Context(), id, nil, lockWait)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	defer held.Unlock()
	if err := g.media.Uploads.Remove(id); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// uploadStatus is GET /api/v1/uploads/{id} (a Parley extension): the
// upload's progress as JSON, and the media item once finished.
func (g *Gateway) uploadStatus(w http.ResponseWriter, r *http.Request, sess chat.Session) {
	tusHeaders(w)
	if !g.mediaReady(w, r) {
		return
	}
	if g.media.Uploads == nil {
		g.writeError(w, r, fmt.Errorf("%w: resumable uploads are not configured", chat.ErrUnavailable))
		return
	}
	info, err := g.upload(sess, r.PathValue("id"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	out := map[string]any{"upload_id": g.uploadID(info.ID), "offset": info.Offset, "length": info.Length, "complete": info.Done}
	if info.Done {
		m, err := g.svc.OwnMedia(r.Context(), sess, info.MediaID)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		out["media"] = toWireMedia(m)
	}
	writeJSON(w, http.StatusOK, out)
}
