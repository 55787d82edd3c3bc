// Package mediatest makes test images carrying the metadata phones write
// (EXIF with orientation and GPS, XMP, comments, text chunks, trailers),
// each holding a "SECRET" string that must not survive stripping, and image
// bombs: headers that promise far more pixels than their bytes hold. The
// media package's tests and the end-to-end tests share them.
package mediatest

import (
	"bytes"
	"compress/zlib"
	_ "embed"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/image/webp"
)

// Small WebP files from golang.org/x/image's test data (BSD licence).
var (
	//go:embed testdata/lossless.webp
	LosslessWebP []byte
	//go:embed testdata/lossy.webp
	LossyWebP []byte
)

// quadrants is a w×h image: its top-left quarter red, the rest blue, so
// that a test can see where the corner went after orientation.
func Quadrants(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{0, 0, 255, 255}
			if x < w/2 && y < h/2 {
				c = color.RGBA{255, 0, 0, 255}
			}
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

// noise is a w×h image of random pixels: the worst case for JPEG size.
func Noise(w, h int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = byte(r.Uint32())
	}
	for i := 3; i < len(m.Pix); i += 4 {
		m.Pix[i] = 255
	}
	return m
}

// tiffWithGPS is an EXIF TIFF structure (big endian) with an orientation,
// a camera make, an image description and a GPS IFD with a latitude.
func TIFFWithGPS(orientation int) []byte {
	bo := binary.BigEndian
	var b []byte
	b = append(b, 'M', 'M', 0, 42, 0, 0, 0, 8)
	// IFD0 at 8: 4 entries, then next-IFD 0; data area after.
	const n0 = 4
	dataOff := 8 + 2 + 12*n0 + 4
	desc := []byte("SECRET-DESCRIPTION\x00")
	make_ := []byte("SECRET-CAMERA\x00")
	gpsIFD := dataOff + len(desc) + len(make_)
	b = bo.AppendUint16(b, n0)
	entry := func(tag, typ uint16, count, value uint32) {
		b = bo.AppendUint16(b, tag)
		b = bo.AppendUint16(b, typ)
		b = bo.AppendUint32(b, count)
		b = bo.AppendUint32(b, value)
	}
	entry(0x010E, 2, uint32(len(desc)), uint32(dataOff))            // ImageDescription
	entry(0x010F, 2, uint32(len(make_)), uint32(dataOff+len(desc))) // Make
	entry(0x0112, 3, 1, uint32(orientation)<<16)                    // Orientation (SHORT, left-justified)
	entry(0x8825, 4, 1, uint32(gpsIFD))                             // GPS IFD pointer
	b = bo.AppendUint32(b, 0)
	b = append(b, desc...)
	b = append(b, make_...)
	// GPS IFD: latitude ref "N" and latitude 48/1 51/1 2417/100 (Paris).
	latOff := gpsIFD + 2 + 12*2 + 4
	b = bo.AppendUint16(b, 2)
	entry(0x0001, 2, 2, 'N'<<24)
	entry(0x0002, 5, 3, uint32(latOff))
	b = bo.AppendUint32(b, 0)
	for _, r := range [][2]uint32{{48, 1}, {51, 1}, {2417, 100}} {
		b = bo.AppendUint32(b, r[0])
		b = bo.AppendUint32(b, r[1])
	}
	return b
}

// jpegSegment frames a JPEG marker segment.
func JPEGSegment(marker byte, payload []byte) []byte {
	s := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(s[2:], uint16(len(payload)+2))
	return append(s, payload...)
}

// phoneJPEG encodes img as a JPEG and adds what a phone adds: EXIF with
// orientation and GPS, XMP, an IPTC-like APP13, a comment, and a trailer
// after EOI.
func PhoneJPEG(t testing.TB, img image.Image, orientation int) []byte {
	t.Helper()
	var enc bytes.Buffer
	if err := jpeg.Encode(&enc, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	raw := enc.Bytes()
	var out []byte
	out = append(out, raw[:2]...) // SOI
	out = append(out, JPEGSegment(0xE1, append([]byte("Exif\x00\x00"), TIFFWithGPS(orientation)...))...)
	out = append(out, JPEGSegment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>SECRET-XMP</x:xmpmeta>"))...)
	out = append(out, JPEGSegment(0xED, []byte("Photoshop 3.0\x00SECRET-IPTC"))...)
	out = append(out, JPEGSegment(0xFE, []byte("SECRET-COMMENT"))...)
	out = append(out, raw[2:]...)
	out = append(out, []byte("SECRET-TRAILER motion photo video would be here")...)
	return out
}

// PNGChunk frames a PNG chunk with its CRC.
func PNGChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// phonePNG encodes img as a PNG with text chunks, an eXIf with GPS and a
// time chunk inserted before the image data, and a trailer after IEND.
func PhonePNG(t testing.TB, img image.Image, orientation int) []byte {
	t.Helper()
	var enc bytes.Buffer
	if err := png.Encode(&enc, img); err != nil {
		t.Fatal(err)
	}
	raw := enc.Bytes()
	ihdrEnd := 8 + 8 + 13 + 4
	var out []byte
	out = append(out, raw[:ihdrEnd]...)
	out = append(out, PNGChunk("tEXt", []byte("Comment\x00SECRET-TEXT"))...)
	out = append(out, PNGChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00SECRET-XMP"))...)
	out = append(out, PNGChunk("eXIf", TIFFWithGPS(orientation))...)
	out = append(out, PNGChunk("tIME", []byte{7, 232, 1, 2, 3, 4, 5})...)
	out = append(out, PNGChunk("prVt", []byte("SECRET-PRIVATE-CHUNK"))...)
	out = append(out, raw[ihdrEnd:]...)
	return append(out, []byte("SECRET-TRAILER")...)
}

// commentedGIF encodes a two-frame GIF with a comment and an XMP
// application extension.
func CommentedGIF(t testing.TB) []byte {
	t.Helper()
	pal := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}}
	frame := func(c uint8) *image.Paletted {
		m := image.NewPaletted(image.Rect(0, 0, 20, 10), pal)
		for i := range m.Pix {
			m.Pix[i] = c
		}
		return m
	}
	var enc bytes.Buffer
	if err := gif.EncodeAll(&enc, &gif.GIF{Image: []*image.Paletted{frame(0), frame(1)}, Delay: []int{10, 10}, LoopCount: 0}); err != nil {
		t.Fatal(err)
	}
	raw := enc.Bytes()
	head := 13 // header and screen descriptor, then any global colour table
	if raw[10]&0x80 != 0 {
		head += 3 << (raw[10]&7 + 1)
	}
	ext := []byte{0x21, 0xFE, 14}
	ext = append(ext, "SECRET-COMMENT"...)
	ext = append(ext, 0)
	ext = append(ext, 0x21, 0xFF, 11)
	ext = append(ext, "XMP DataXMP"...)
	ext = append(ext, 10)
	ext = append(ext, "SECRET-XMP"...)
	ext = append(ext, 0)
	out := append(append(append([]byte{}, raw[:head]...), ext...), raw[head:]...)
	return append(out, []byte("SECRET-TRAILER")...)
}

// extendedWebP wraps the lossless test image in a VP8X container with
// EXIF (orientation and GPS) and XMP chunks.
func ExtendedWebP(t testing.TB, orientation int) []byte {
	t.Helper()
	raw := LosslessWebP
	cfg, err := webp.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(fourcc string, data []byte) []byte {
		b := append([]byte(fourcc), 0, 0, 0, 0)
		binary.LittleEndian.PutUint32(b[4:], uint32(len(data)))
		b = append(b, data...)
		if len(data)%2 == 1 {
			b = append(b, 0)
		}
		return b
	}
	vp8x := make([]byte, 10)
	vp8x[0] = 0x08 | 0x04 // EXIF and XMP flags
	w, h := uint32(cfg.Width-1), uint32(cfg.Height-1)
	vp8x[4], vp8x[5], vp8x[6] = byte(w), byte(w>>8), byte(w>>16)
	vp8x[7], vp8x[8], vp8x[9] = byte(h), byte(h>>8), byte(h>>16)
	body := []byte("WEBP")
	body = append(body, chunk("VP8X", vp8x)...)
	body = append(body, raw[12:]...) // the VP8L chunk
	body = append(body, chunk("EXIF", TIFFWithGPS(orientation))...)
	body = append(body, chunk("XMP ", []byte("<x:xmpmeta>SECRET-XMP</x:xmpmeta>"))...)
	out := append([]byte("RIFF"), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(body)))
	return append(out, body...)
}

// bombPNG is a valid PNG header for a w×h RGBA image with a tiny IDAT:
// decoding it would allocate w*h*4 bytes.
func BombPNG(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write(make([]byte, 1000))
	_ = zw.Close()
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, PNGChunk("IHDR", ihdr)...)
	out = append(out, PNGChunk("IDAT", z.Bytes())...)
	return append(out, PNGChunk("IEND", nil)...)
}

// bombJPEG is a JPEG whose frame header claims w×h pixels.
func BombJPEG(t testing.TB, w, h uint16) []byte {
	t.Helper()
	var enc bytes.Buffer
	if err := jpeg.Encode(&enc, Quadrants(16, 16), nil); err != nil {
		t.Fatal(err)
	}
	b := enc.Bytes()
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

// writeTemp writes b to a temporary file, open at offset 0.
func WriteTemp(t testing.TB, b []byte) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "upload-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// PhotoLike is smooth gradients with a little noise: it compresses like a
// photograph (about 3 MB at JPEG quality 90 for 12 megapixels).
func PhotoLike(w, h int) *image.RGBA {
	m := Noise(w, h, 11)
	for y := range h {
		for x := range w {
			i := m.PixOffset(x, y)
			m.Pix[i] = uint8(x*255/w)/2 + m.Pix[i]/8
			m.Pix[i+1] = uint8(y*255/h)/2 + m.Pix[i+1]/8
			m.Pix[i+2] = uint8((x+y)*255/(w+h))/2 + m.Pix[i+2]/8
		}
	}
	return m
}
