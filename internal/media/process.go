package media

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"os"
	"runtime"

	"golang.org/x/image/webp"

	"github.com/parley-chat/parley/internal/chat"
)

// Processor turns an uploaded file into what is stored: the type decided
// from the bytes, images stripped of metadata with their dimensions and a
// thumbnail, videos with a poster and audio with a duration when ffmpeg is
// installed. Decoding for thumbnails is bounded: images whose header
// promises more than MaxDecodePixels or MaxDecodeBytes are never decoded,
// and at most Slots decodes run at once.
type Processor struct {
	tmp    string
	ffmpeg *FFmpeg
	slots  chan struct{}
	log    *slog.Logger
}

// ProcessorConfig configures a Processor.
type ProcessorConfig struct {
	TempDir string       // where stripped copies are written
	FFmpeg  *FFmpeg      // nil: no video posters, no durations
	Slots   int          // concurrent thumbnail decodes (GOMAXPROCS when 0)
	Logger  *slog.Logger // nil: discard
}

// NewProcessor returns a Processor.
func NewProcessor(cfg ProcessorConfig) *Processor {
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Processor{tmp: cfg.TempDir, ffmpeg: cfg.FFmpeg, slots: make(chan struct{}, cfg.Slots), log: cfg.Logger}
}

// Processed is a file ready to store. Close it when done.
type Processed struct {
	ContentType string
	Size        int64
	Width       int
	Height      int
	DurationMS  int64
	Thumbnail   string // data: URL or ""
	// File holds the bytes to store, at offset 0: the upload itself, or a
	// stripped copy.
	File *os.File

	own bool // File is a copy this package made
}

// Close releases the stripped copy, if one was made (not the upload).
func (p *Processed) Close() {
	if p.own && p.File != nil {
		p.File.Close()
		os.Remove(p.File.Name())
	}
}

// Process inspects src (an uploaded file, read from offset 0) and returns
// what to store. Errors: ErrInvalid for an empty file or an image whose
// structure is broken.
func (p *Processor) Process(ctx context.Context, src *os.File) (*Processed, error) {
	fi, err := src.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return nil, fmt.Errorf("%w: the file is empty", chat.ErrInvalid)
	}
	head := make([]byte, SniffLen)
	n, err := src.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	res := &Processed{ContentType: Sniff(head[:n]), Size: fi.Size(), File: src}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	switch ct := res.ContentType; {
	case ct == "image/jpeg" || ct == "image/png" || ct == "image/gif" || ct == "image/webp":
		if err := p.image(ctx, src, res); err != nil {
			res.Close()
			return nil, err
		}
	case p.ffmpeg != nil && (MediaKind(ct) == chat.ContentVideo || MediaKind(ct) == chat.ContentVoice):
		p.av(ctx, src.Name(), res)
	}
	if _, err := res.File.Seek(0, io.SeekStart); err != nil {
		res.Close()
		return nil, err
	}
	return res, nil
}

// MediaKind is chat.MediaKind: the message content_type of a media type.
func MediaKind(contentType string) string { return chat.MediaKind(contentType) }

type imageCodec struct {
	name   string
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
	strip  func(io.Writer, *os.File) (stripped, error)
}

var imageCodecs = map[string]imageCodec{
	"image/jpeg": {"jpeg", jpeg.DecodeConfig, jpeg.Decode, func(w io.Writer, f *os.File) (stripped, error) { return stripJPEG(w, f) }},
	"image/png":  {"png", png.DecodeConfig, png.Decode, func(w io.Writer, f *os.File) (stripped, error) { return stripPNG(w, f) }},
	"image/gif":  {"gif", gif.DecodeConfig, gif.Decode, func(w io.Writer, f *os.File) (stripped, error) { return stripGIF(w, f) }},
	"image/webp": {"webp", webp.DecodeConfig, webp.Decode, func(w io.Writer, f *os.File) (stripped, error) { return stripWebP(w, f) }},
}

// image strips an image's metadata into a copy, records its displayed size,
// and makes a thumbnail when decoding it is within bounds.
func (p *Processor) image(ctx context.Context, src *os.File, res *Processed) error {
	codec := imageCodecs[res.ContentType]
	cfg, err := codec.config(io.LimitReader(src, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: the bytes start like %s but are not a valid image: %v", chat.ErrInvalid, res.ContentType, err)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	out, err := os.CreateTemp(p.tmp, "stripped-*")
	if err != nil {
		return err
	}
	res.File, res.own = out, true
	buf := bufio.NewWriterSize(out, 256<<10)
	bw := &countWriter{w: buf}
	st, err := codec.strip(bw, src)
	if errors.Is(err, errMalformed) {
		return fmt.Errorf("%w: the %s is malformed: %v", chat.ErrInvalid, res.ContentType, err)
	}
	if err == nil {
		err = buf.Flush()
	}
	if err != nil {
		return err
	}
	res.Size = bw.n
	res.Width, res.Height = cfg.Width, cfg.Height
	if swapsAxes(st.orientation) {
		res.Width, res.Height = cfg.Height, cfg.Width
	}
	if !decodable(cfg, codec.name, st.progressive) {
		p.log.Info("image too large to thumbnail", "type", res.ContentType, "width", cfg.Width, "height", cfg.Height)
		return nil
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return err
	}
	img, err := codec.decode(io.LimitReader(out, res.Size))
	if err != nil {
		// A truncated image is stored as it is, without a thumbnail.
		p.log.Info("image not decodable; no thumbnail", "type", res.ContentType, "err", err)
		return nil
	}
	if res.Thumbnail, err = thumbnail(img, st.orientation); err != nil {
		p.log.Info("no thumbnail", "type", res.ContentType, "err", err)
	}
	return nil
}

// av asks ffmpeg for a video's poster and size, and any media's duration.
// Failures only mean less metadata.
func (p *Processor) av(ctx context.Context, path string, res *Processed) {
	pr, err := p.ffmpeg.Probe(ctx, path)
	if err != nil {
		p.log.Info("ffprobe failed", "type", res.ContentType, "err", err)
		return
	}
	res.DurationMS = pr.DurationMS
	if !pr.HasVideo || MediaKind(res.ContentType) != chat.ContentVideo {
		return
	}
	res.Width, res.Height = pr.Width, pr.Height
	poster, err := p.ffmpeg.Poster(ctx, path)
	if err != nil {
		p.log.Info("no video poster", "err", err)
		return
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(poster))
	if err != nil || !decodable(cfg, "png", false) {
		return
	}
	img, err := png.Decode(bytes.NewReader(poster))
	if err != nil {
		return
	}
	if res.Thumbnail, err = thumbnail(img, OrientNormal); err != nil {
		p.log.Info("no video thumbnail", "err", err)
	}
}

// countWriter counts what it writes.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
