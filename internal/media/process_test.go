package media

import (
	"bytes"
	"encoding/base64"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/media/mediatest"
	"github.com/parley-chat/parley/internal/testskip"
)

func newTestProcessor(t testing.TB) *Processor {
	return NewProcessor(ProcessorConfig{TempDir: t.TempDir()})
}

// process runs the processor on b and returns the result and the stored bytes.
func process(t testing.TB, b []byte) (*Processed, []byte) {
	t.Helper()
	res, err := newTestProcessor(t).Process(t.Context(), mediatest.WriteTemp(t, b))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	t.Cleanup(res.Close)
	stored, err := io.ReadAll(res.File)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(stored)) != res.Size {
		t.Fatalf("Size = %d, stored %d bytes", res.Size, len(stored))
	}
	return res, stored
}

func noSecrets(t *testing.T, stored []byte) {
	t.Helper()
	if i := bytes.Index(stored, []byte("SECRET")); i >= 0 {
		end := min(len(stored), i+30)
		t.Fatalf("metadata survived: %q", stored[i:end])
	}
}

// decodeThumb checks a thumbnail data: URL and decodes it.
func decodeThumb(t *testing.T, thumb string) image.Image {
	t.Helper()
	if len(thumb) >= ThumbnailMaxBytes {
		t.Fatalf("thumbnail is %d bytes, want under %d", len(thumb), ThumbnailMaxBytes)
	}
	b64, ok := strings.CutPrefix(thumb, "data:image/jpeg;base64,")
	if !ok {
		t.Fatalf("thumbnail is not a JPEG data: URL: %.40q", thumb)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("thumbnail does not decode: %v", err)
	}
	return img
}

func isRed(c interface{ RGBA() (r, g, b, a uint32) }) bool {
	r, g, b, _ := c.RGBA()
	return r > 0xB000 && g < 0x5000 && b < 0x5000
}

func samePixels(t *testing.T, a, b image.Image) {
	t.Helper()
	if a.Bounds() != b.Bounds() {
		t.Fatalf("bounds %v != %v", a.Bounds(), b.Bounds())
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				t.Fatalf("pixel (%d,%d) changed: %v != %v", x, y, a.At(x, y), b.At(x, y))
			}
		}
	}
}

func TestSniff(t *testing.T) {
	pngHead := mediatest.BombPNG(10, 10)
	for _, tc := range []struct {
		name string
		head []byte
		want string
	}{
		{"png whatever its name", pngHead, "image/png"},
		{"html", []byte("<!DOCTYPE html><script>alert(1)</script>"), "text/html; charset=utf-8"},
		{"svg is not an image here", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>`), "text/xml; charset=utf-8"},
		{"pdf", []byte("%PDF-1.7\n"), "application/pdf"},
		{"zip (docx)", []byte("PK\x03\x04\x14\x00"), "application/zip"},
		{"mp4", []byte("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"), "video/mp4"},
		{"m4a", []byte("\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom"), "audio/mp4"},
		{"quicktime", []byte("\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  "), "video/quicktime"},
		{"heic", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), "image/heif"},
		{"ogg opus", []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead"), "audio/ogg"},
		{"webm voice note", []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm\x86\x86A_OPUS"), "audio/webm"},
		{"webm video", []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm\x86\x85V_VP9\x86\x86A_OPUS"), "video/webm"},
		{"plain text", []byte("hello, world\n"), "text/plain; charset=utf-8"},
		{"random bytes", []byte{0x00, 0x01, 0x02, 0xFE, 0x80, 0x90}, "application/octet-stream"},
	} {
		if got := Sniff(tc.head); got != tc.want {
			t.Errorf("%s: Sniff = %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, ct := range []string{"text/html; charset=utf-8", "text/xml; charset=utf-8", "application/pdf", "image/heif", "application/octet-stream"} {
		if Inline(ct) {
			t.Errorf("Inline(%q) = true; it must be served as an attachment", ct)
		}
	}
}

func TestJPEGMetadataStrippedOrientationHonoured(t *testing.T) {
	src := mediatest.Quadrants(64, 32) // landscape as stored; red top-left
	in := mediatest.PhoneJPEG(t, src, OrientRotate90CW)
	res, stored := process(t, in)
	if res.ContentType != "image/jpeg" {
		t.Fatalf("ContentType = %q", res.ContentType)
	}
	noSecrets(t, stored)
	if bytes.Contains(stored, []byte{0x88, 0x25}) && bytes.Contains(stored, []byte{0, 2, 0, 5, 0, 0, 0, 3}) {
		t.Fatal("a GPS IFD survived")
	}
	// Displayed size: rotated by 90 degrees.
	if res.Width != 32 || res.Height != 64 {
		t.Fatalf("size = %dx%d, want 32x64 (displayed, rotated)", res.Width, res.Height)
	}
	// The stored file keeps the orientation, and nothing else, as EXIF.
	st, err := stripJPEG(io.Discard, bytes.NewReader(stored))
	if err != nil || st.orientation != OrientRotate90CW {
		t.Fatalf("stored file: orientation %d, %v; want 6", st.orientation, err)
	}
	// Pixels are untouched: the entropy-coded data is copied verbatim.
	orig, err := jpeg.Decode(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := jpeg.Decode(bytes.NewReader(stored))
	if err != nil {
		t.Fatalf("stored JPEG does not decode: %v", err)
	}
	samePixels(t, orig, got)
	// The thumbnail is upright: rotated 90° clockwise, the red corner is
	// now top-right, and the thumbnail is portrait.
	th := decodeThumb(t, res.Thumbnail)
	b := th.Bounds()
	if b.Dx() >= b.Dy() {
		t.Fatalf("thumbnail %v is not portrait", b)
	}
	if !isRed(th.At(b.Max.X-2, b.Min.Y+1)) || isRed(th.At(b.Min.X+1, b.Min.Y+1)) {
		t.Fatalf("thumbnail not rotated: top-left %v, top-right %v", th.At(b.Min.X+1, b.Min.Y+1), th.At(b.Max.X-2, b.Min.Y+1))
	}
}

func TestEveryOrientation(t *testing.T) {
	// Where the red top-left corner of the stored pixels ends up when shown.
	want := map[int]string{1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}
	for o := 1; o <= 8; o++ {
		res, _ := process(t, mediatest.PhoneJPEG(t, mediatest.Quadrants(40, 20), o))
		th := decodeThumb(t, res.Thumbnail)
		b := th.Bounds()
		corners := map[string]image.Point{"tl": {1, 1}, "tr": {b.Dx() - 2, 1}, "bl": {1, b.Dy() - 2}, "br": {b.Dx() - 2, b.Dy() - 2}}
		for name, p := range corners {
			if red := isRed(th.At(p.X, p.Y)); red != (name == want[o]) {
				t.Errorf("orientation %d: corner %s red = %v", o, name, red)
			}
		}
		if swapsAxes(o) != (res.Width == 20) {
			t.Errorf("orientation %d: size %dx%d", o, res.Width, res.Height)
		}
	}
}

func TestPNGMetadataStripped(t *testing.T) {
	src := mediatest.Quadrants(30, 20)
	res, stored := process(t, mediatest.PhonePNG(t, src, OrientNormal))
	noSecrets(t, stored)
	if res.ContentType != "image/png" || res.Width != 30 || res.Height != 20 {
		t.Fatalf("result %+v", res)
	}
	got, err := imageCodecs["image/png"].decode(bytes.NewReader(stored))
	if err != nil {
		t.Fatalf("stored PNG does not decode: %v", err)
	}
	samePixels(t, src, got)
	decodeThumb(t, res.Thumbnail)
	// An orientation in eXIf is kept alone, and honoured.
	res, stored = process(t, mediatest.PhonePNG(t, src, OrientRotate90CCW))
	noSecrets(t, stored)
	if res.Width != 20 || res.Height != 30 || !bytes.Contains(stored, []byte("eXIf")) {
		t.Fatalf("rotated PNG: %dx%d, eXIf kept %v", res.Width, res.Height, bytes.Contains(stored, []byte("eXIf")))
	}
}

func TestGIFMetadataStripped(t *testing.T) {
	res, stored := process(t, mediatest.CommentedGIF(t))
	noSecrets(t, stored)
	if res.ContentType != "image/gif" || res.Width != 20 || res.Height != 10 {
		t.Fatalf("result %+v", res)
	}
	g, err := decodeAllGIF(stored)
	if err != nil || len(g) != 2 {
		t.Fatalf("stored GIF: %d frames, %v", len(g), err)
	}
	if !bytes.Contains(stored, []byte("NETSCAPE2.0")) {
		t.Fatal("the loop count was dropped")
	}
	decodeThumb(t, res.Thumbnail)
}

func TestWebPMetadataStripped(t *testing.T) {
	res, stored := process(t, mediatest.ExtendedWebP(t, OrientNormal))
	noSecrets(t, stored)
	if res.ContentType != "image/webp" || res.Width == 0 {
		t.Fatalf("result %+v", res)
	}
	if _, err := imageCodecs["image/webp"].decode(bytes.NewReader(stored)); err != nil {
		t.Fatalf("stored WebP does not decode: %v", err)
	}
	if flags := stored[20]; flags&(vp8xEXIF|vp8xXMP) != 0 {
		t.Fatalf("VP8X flags %#x still announce EXIF/XMP", flags)
	}
	decodeThumb(t, res.Thumbnail)

	res, stored = process(t, mediatest.ExtendedWebP(t, OrientRotate90CW))
	noSecrets(t, stored)
	if st, err := stripWebP(io.Discard, bytes.NewReader(stored)); err != nil || st.orientation != OrientRotate90CW {
		t.Fatalf("rotated WebP: orientation %d, %v", st.orientation, err)
	}

	res, _ = process(t, mediatest.LossyWebP)
	decodeThumb(t, res.Thumbnail)
}

func TestThumbnailOfNoiseFitsTheBudget(t *testing.T) {
	res, _ := process(t, mediatest.PhoneJPEG(t, mediatest.Noise(1200, 900, 7), OrientNormal))
	th := decodeThumb(t, res.Thumbnail)
	if th.Bounds().Dx() < 32 {
		t.Fatalf("thumbnail shrank to %v", th.Bounds())
	}
	t.Logf("noise thumbnail: %v, %d bytes", th.Bounds(), len(res.Thumbnail))
}

// TestImageBombsAreNeverDecoded: a 20,000 × 20,000 image (400 megapixels,
// 1.6 GB as RGBA) made of a few hundred bytes is stored with its size and
// without a thumbnail, and processing it allocates next to nothing.
func TestImageBombsAreNeverDecoded(t *testing.T) {
	for name, b := range map[string][]byte{
		"png":  mediatest.BombPNG(20000, 20000),
		"jpeg": mediatest.BombJPEG(t, 20000, 20000),
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		res, _ := process(t, b)
		runtime.ReadMemStats(&after)
		if res.Width != 20000 || res.Height != 20000 || res.Thumbnail != "" {
			t.Errorf("%s bomb: %dx%d, thumbnail %d bytes", name, res.Width, res.Height, len(res.Thumbnail))
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("%s bomb: processing allocated %d MB", name, grew>>20)
		}
	}
}

func TestTruncatedImages(t *testing.T) {
	whole := mediatest.PhoneJPEG(t, mediatest.Noise(200, 150, 3), OrientNormal)
	sos := bytes.Index(whole, []byte{0xFF, 0xDA})
	// Cut inside the image data: stored as it is, no thumbnail, no error.
	res, stored := process(t, whole[:sos+2000])
	if res.ContentType != "image/jpeg" || res.Width != 200 || res.Thumbnail != "" {
		t.Fatalf("truncated JPEG: %+v", res)
	}
	noSecrets(t, stored)
	// Cut inside the headers: not a valid image, refused.
	_, err := newTestProcessor(t).Process(t.Context(), mediatest.WriteTemp(t, whole[:sos-100]))
	if !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("JPEG cut in its headers: %v, want ErrInvalid", err)
	}
	// Only the first bytes of a PNG.
	_, err = newTestProcessor(t).Process(t.Context(), mediatest.WriteTemp(t, mediatest.BombPNG(10, 10)[:20]))
	if !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("PNG cut in its header: %v, want ErrInvalid", err)
	}
}

func TestEmptyFileIsRefused(t *testing.T) {
	_, err := newTestProcessor(t).Process(t.Context(), mediatest.WriteTemp(t, nil))
	if !errors.Is(err, chat.ErrInvalid) {
		t.Fatalf("empty file: %v, want ErrInvalid", err)
	}
}

func TestOtherFilesAreStoredByteForByte(t *testing.T) {
	for _, b := range [][]byte{
		[]byte("<!DOCTYPE html><script>alert(document.cookie)</script>"),
		[]byte("%PDF-1.4\n% SECRET but a document's own business\n"),
		bytes.Repeat([]byte{0, 1, 2, 3, 250}, 1000),
	} {
		res, stored := process(t, b)
		if !bytes.Equal(stored, b) || res.Thumbnail != "" || res.Width != 0 {
			t.Errorf("%s changed or got image metadata: %+v", res.ContentType, res)
		}
	}
}

// BenchmarkThumbnail measures processing a phone photo (JPEG quality 90,
// with EXIF): strip, decode, shrink, encode the thumbnail, at 12 megapixels
// (4000 × 3000, a camera original) and 2 megapixels (1600 × 1200, what chat
// apps usually send).
func BenchmarkThumbnail(b *testing.B) {
	for _, size := range []struct {
		name string
		w, h int
	}{{"12MP", 4000, 3000}, {"2MP", 1600, 1200}} {
		b.Run(size.name, func(b *testing.B) {
			in := mediatest.PhoneJPEG(b, mediatest.PhotoLike(size.w, size.h), OrientRotate90CW)
			p := newTestProcessor(b)
			f := mediatest.WriteTemp(b, in)
			b.SetBytes(int64(len(in)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := f.Seek(0, 0); err != nil {
					b.Fatal(err)
				}
				res, err := p.Process(b.Context(), f)
				if err != nil || res.Thumbnail == "" {
					b.Fatalf("Process: %v", err)
				}
				res.Close()
			}
		})
	}
}

func decodeAllGIF(b []byte) ([]*image.Paletted, error) {
	g, err := gif.DecodeAll(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return g.Image, nil
}

// TestVideoPosterWithFFmpeg runs only where ffmpeg and ffprobe are
// installed: a generated two-second video gets a poster thumbnail, its size
// and its duration; a generated tone gets its duration.
func TestVideoPosterWithFFmpeg(t *testing.T) {
	ff := FindFFmpeg()
	if ff == nil {
		testskip.Skip(t, "ffmpeg/ffprobe not on PATH: video posters and durations are optional")
	}
	dir := t.TempDir()
	video, audio := filepath.Join(dir, "v.mp4"), filepath.Join(dir, "a.ogg")
	if _, err := ff.run(t.Context(), ff.ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=10",
		"-pix_fmt", "yuv420p", video); err != nil {
		testskip.Skipf(t, "this ffmpeg cannot make a test video: %v", err)
	}
	if _, err := ff.run(t.Context(), ff.ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
		"-c:a", "libopus", audio); err != nil {
		testskip.Skipf(t, "this ffmpeg cannot make a test voice note: %v", err)
	}
	p := NewProcessor(ProcessorConfig{TempDir: dir, FFmpeg: ff})
	for _, tc := range []struct {
		path, kind string
		durationMS int64
	}{{video, chat.ContentVideo, 2000}, {audio, chat.ContentVoice, 3000}} {
		f, err := os.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Process(t.Context(), f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if MediaKind(res.ContentType) != tc.kind || res.DurationMS < tc.durationMS-200 || res.DurationMS > tc.durationMS+200 {
			t.Fatalf("%s: %s, %d ms", tc.path, res.ContentType, res.DurationMS)
		}
		if tc.kind == chat.ContentVideo {
			if res.Width != 320 || res.Height != 240 {
				t.Fatalf("video size %dx%d", res.Width, res.Height)
			}
			decodeThumb(t, res.Thumbnail)
		}
	}
}
