package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Media is an uploaded file as the server describes it. ContentType is
// what the server decided from the bytes; Kind is the message content_type
// that fits it (image, video, voice or file).
type Media struct {
	MediaID     string `json:"media_id"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
	Thumbnail   string `json:"thumbnail,omitempty"` // a data: URL under 10 KB
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	DurationMS  int64  `json:"duration_ms,omitempty"`
	Name        string `json:"name,omitempty"`
	Kind        string `json:"kind,omitempty"`
	CreatedAt   int64  `json:"created_at,omitempty"`
}

// UploadMedia uploads a file in one request (POST /api/v1/media). For large
// files prefer UploadFile, which resumes after interruptions.
func (c *Client) UploadMedia(ctx context.Context, r io.Reader, name string) (Media, error) {
	u := endpoint(c.currentURL(), "/media")
	if name != "" {
		u += "?name=" + url.QueryEscape(name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, r)
	if err != nil {
		return Media{}, fmt.Errorf("parley: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var m Media
	err = c.doMedia(req, http.StatusCreated, &m)
	return m, err
}

// MediaInfo returns a media item's metadata, with its thumbnail (GET
// /api/v1/media/{id}/info).
func (c *Client) MediaInfo(ctx context.Context, mediaID string) (Media, error) {
	var m Media
	err := c.rest(ctx, http.MethodGet, "/media/"+url.PathEscape(mediaID)+"/info", nil, &m)
	return m, err
}

// doMedia sends an authenticated request and decodes a JSON answer of the
// wanted status.
func (c *Client) doMedia(req *http.Request, want int, out any) error {
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("parley: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return decodeHTTPError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("parley: decode %s %s answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// UploadOptions tune UploadFile.
type UploadOptions struct {
	// Name is the file name the recipients see (default: the path's base).
	Name string
	// ResumeURL is the URL of an upload of the same file started earlier
	// (given to OnStart then); "" starts a new upload. An unknown or
	// different upload is ignored and a new one started.
	ResumeURL string
	// OnStart receives the upload's URL once it exists: keep it to resume
	// after this process ends.
	OnStart func(uploadURL string)
	// Progress receives the bytes the server holds, and the total, as the
	// upload goes (also after a resume, from the server's offset).
	Progress func(sent, total int64)
	// ChunkSize bounds one request's body (default 16 MiB): each chunk the
	// server acknowledges is safe.
	ChunkSize int64
	// MaxRetries is how many failures in a row (network errors, 5xx, 409)
	// UploadFile rides out with backoff before it gives up (default 10).
	MaxRetries int
}

// UploadFile uploads a file resumably, with the tus 1.0 protocol at
// /api/v1/uploads: after a dropped connection it asks the server how much
// arrived and goes on from there, with backoff, until the file is complete
// or MaxRetries failures in a row; a later call with ResumeURL continues
// an upload this process did not finish. It returns the media item the file
// became.
func (c *Client) UploadFile(ctx context.Context, path string, opts UploadOptions) (Media, error) {
	f, err := os.Open(path)
	if err != nil {
		return Media{}, fmt.Errorf("parley: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Media{}, fmt.Errorf("parley: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return Media{}, fmt.Errorf("parley: %s is empty", path)
	}
	if opts.Name == "" {
		opts.Name = filepath.Base(path)
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 16 << 20
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 10
	}
	progress := func(n int64) {
		if opts.Progress != nil {
			opts.Progress(n, size)
		}
	}
	up := &tusUpload{c: c, size: size}
	offset := int64(-1)
	if opts.ResumeURL != "" {
		up.url = opts.ResumeURL
		if off, length, err := up.head(ctx); err == nil && length == size {
			offset = off
		}
	}
	if offset < 0 {
		if err := up.create(ctx, opts.Name); err != nil {
			return Media{}, err
		}
		offset = 0
		if opts.OnStart != nil {
			opts.OnStart(up.url)
		}
	}
	progress(offset)
	failures := 0
	backoff := Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for up.mediaID == "" {
		end := min(offset+opts.ChunkSize, size)
		body := &progressReader{r: io.NewSectionReader(f, offset, end-offset), base: offset, report: progress}
		next, err := up.patch(ctx, offset, body, end-offset)
		if err == nil {
			offset, failures = next, 0
			progress(offset)
			continue
		}
		var ae *APIError
		retry := !errors.As(err, &ae) || ae.Status >= 500 || ae.Status == http.StatusConflict ||
			ae.Status == http.StatusLocked || ae.Status == http.StatusTooManyRequests
		if !retry || ctx.Err() != nil {
			return Media{}, err
		}
		if failures++; failures > opts.MaxRetries {
			return Media{}, fmt.Errorf("parley: upload gave up after %d failures in a row: %w", failures, err)
		}
		select {
		case <-time.After(backoff.Delay(failures - 1)):
		case <-ctx.Done():
			return Media{}, ctx.Err()
		}
		if off, _, herr := up.head(ctx); herr == nil {
			offset = off
			progress(offset)
		}
	}
	var status struct {
		Media Media `json:"media"`
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, up.url, nil)
	if err != nil {
		return Media{}, fmt.Errorf("parley: %w", err)
	}
	if err := c.doMedia(req, http.StatusOK, &status); err != nil {
		return Media{}, err
	}
	return status.Media, nil
}

// tusUpload is one resumable upload.
type tusUpload struct {
	c       *Client
	url     string
	size    int64
	mediaID string // set when the server says the upload became media
}

func (u *tusUpload) request(ctx context.Context, method, target string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("parley: %w", err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+u.c.token)
	return req, nil
}

func (u *tusUpload) do(req *http.Request, want int) (*http.Response, error) {
	resp, err := u.c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("parley: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode != want {
		return nil, decodeHTTPError(resp)
	}
	return resp, nil
}

func (u *tusUpload) create(ctx context.Context, name string) error {
	base := endpoint(u.c.currentURL(), "/uploads")
	req, err := u.request(ctx, http.MethodPost, base, http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Upload-Length", strconv.FormatInt(u.size, 10))
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(name)))
	resp, err := u.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("parley: the server created an upload without a Location: %w", err)
	}
	u.url = loc.String()
	return nil
}

// head returns the server's offset and the upload's length.
func (u *tusUpload) head(ctx context.Context) (offset, length int64, err error) {
	req, err := u.request(ctx, http.MethodHead, u.url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := u.do(req, http.StatusOK)
	if err != nil {
		return 0, 0, err
	}
	offset, err1 := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	length, err2 := strconv.ParseInt(resp.Header.Get("Upload-Length"), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("parley: HEAD of the upload lacks Upload-Offset or Upload-Length")
	}
	if id := resp.Header.Get("Parley-Media-Id"); id != "" {
		u.mediaID = id
	}
	return offset, length, nil
}

// patch sends n bytes at offset and returns the server's new offset.
func (u *tusUpload) patch(ctx context.Context, offset int64, body io.Reader, n int64) (int64, error) {
	req, err := u.request(ctx, http.MethodPatch, u.url, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := u.do(req, http.StatusNoContent)
	if err != nil {
		return 0, err
	}
	next, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return 0, errors.New("parley: PATCH answer lacks Upload-Offset")
	}
	if id := resp.Header.Get("Parley-Media-Id"); id != "" {
		u.mediaID = id
	}
	return next, nil
}

// progressReader reports base plus what was read so far.
type progressReader struct {
	r      io.Reader
	base   int64
	n      int64
	report func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.report(p.base + p.n)
	return n, err
}

// Download is what Download learned of the media it wrote.
type Download struct {
	ContentType string
	Size        int64
	Name        string // the uploader's file name, "" if none
}

// Download writes a media item's bytes to w (GET /api/v1/media/{id});
// progress, if not nil, receives the bytes written and the total.
func (c *Client) Download(ctx context.Context, mediaID string, w io.Writer, progress func(done, total int64)) (Download, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(c.currentURL(), "/media/"+url.PathEscape(mediaID)), nil)
	if err != nil {
		return Download{}, fmt.Errorf("parley: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return Download{}, fmt.Errorf("parley: download %s: %w", mediaID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Download{}, decodeHTTPError(resp)
	}
	d := Download{ContentType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		d.Name = params["filename"]
	}
	var src io.Reader = resp.Body
	if progress != nil {
		src = &progressReader{r: resp.Body, report: func(n int64) { progress(n, d.Size) }}
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return d, fmt.Errorf("parley: download %s: %w", mediaID, err)
	}
	if d.Size >= 0 && n != d.Size {
		return d, fmt.Errorf("parley: download %s: got %d of %d bytes", mediaID, n, d.Size)
	}
	d.Size = n
	return d, nil
}
