package media

import (
	"encoding/binary"
	"io"
)

// webpKeep are the WebP chunks kept: image data, alpha, animation, colour
// profile. EXIF and XMP go, and unknown chunks with them.
var webpKeep = map[string]bool{
	"VP8 ": true, "VP8L": true, "VP8X": true, "ALPH": true, "ANIM": true, "ANMF": true, "ICCP": true,
}

// VP8X flag bits.
const (
	vp8xEXIF = 0x08
	vp8xXMP  = 0x04
)

// maxWebPChunks bounds the chunk list a WebP stripper keeps (an animation
// has one chunk per frame).
const maxWebPChunks = 100_000

type webpChunk struct {
	fourcc string
	off    int64 // of the payload
	size   int64 // of the payload, without padding
}

// stripWebP rewrites a WebP RIFF container without its EXIF and XMP chunks
// (an orientation becomes a minimal EXIF chunk), fixing the RIFF size and
// the VP8X flags. It reads src twice: once to list the chunks (seeking over
// their payloads), once to copy them.
func stripWebP(dst io.Writer, src io.ReadSeeker) (stripped, error) {
	st := stripped{orientation: OrientNormal}
	var head [12]byte
	if _, err := io.ReadFull(src, head[:]); err != nil || string(head[:4]) != "RIFF" || string(head[8:]) != "WEBP" {
		return st, malformed("no WebP RIFF header")
	}
	riffEnd := 8 + int64(binary.LittleEndian.Uint32(head[4:8]))
	var chunks []webpChunk
	pos := int64(12)
	for pos+8 <= riffEnd {
		var h [8]byte
		if _, err := io.ReadFull(src, h[:]); err != nil {
			break // cut short: keep what is whole
		}
		c := webpChunk{fourcc: string(h[:4]), off: pos + 8, size: int64(binary.LittleEndian.Uint32(h[4:]))}
		next := c.off + c.size + c.size&1
		if next > riffEnd {
			st.truncated = true
			break
		}
		if c.fourcc == "EXIF" && c.size <= 1<<20 {
			body := make([]byte, c.size)
			if _, err := io.ReadFull(src, body); err != nil {
				return st, malformed("WebP EXIF chunk cut short")
			}
			if len(body) > 6 && string(body[:6]) == "Exif\x00\x00" { // some writers add the JPEG prefix
				body = body[6:]
			}
			st.orientation = exifOrientation(body)
		}
		if webpKeep[c.fourcc] {
			if len(chunks) == maxWebPChunks {
				return st, malformed("WebP with over %d chunks", maxWebPChunks)
			}
			chunks = append(chunks, c)
		}
		if _, err := src.Seek(next, io.SeekStart); err != nil {
			return st, err
		}
		pos = next
	}
	if len(chunks) == 0 {
		return st, malformed("WebP without image data")
	}
	var exif []byte
	if st.orientation != OrientNormal && chunks[0].fourcc == "VP8X" {
		exif = minimalEXIF(st.orientation)
	}
	total := int64(4)
	for _, c := range chunks {
		total += 8 + c.size + c.size&1
	}
	if exif != nil {
		total += 8 + int64(len(exif))
	}
	if total > 1<<32-1 {
		return st, malformed("WebP too large")
	}
	out := append([]byte("RIFF"), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[4:], uint32(total))
	if _, err := dst.Write(append(out, "WEBP"...)); err != nil {
		return st, err
	}
	for _, c := range chunks {
		h := append([]byte(c.fourcc), 0, 0, 0, 0)
		binary.LittleEndian.PutUint32(h[4:], uint32(c.size))
		if _, err := dst.Write(h); err != nil {
			return st, err
		}
		if _, err := src.Seek(c.off, io.SeekStart); err != nil {
			return st, err
		}
		n := c.size + c.size&1
		if c.fourcc == "VP8X" && c.size >= 1 {
			var flags [1]byte
			if _, err := io.ReadFull(src, flags[:]); err != nil {
				return st, malformed("WebP VP8X cut short")
			}
			flags[0] &^= vp8xXMP
			if exif == nil {
				flags[0] &^= vp8xEXIF
			}
			if _, err := dst.Write(flags[:]); err != nil {
				return st, err
			}
			n--
		}
		if _, err := io.CopyN(dst, src, n); err != nil {
			return st, malformed("WebP chunk cut short")
		}
	}
	if exif != nil {
		h := append([]byte("EXIF"), 0, 0, 0, 0)
		binary.LittleEndian.PutUint32(h[4:], uint32(len(exif)))
		if _, err := dst.Write(append(h, exif...)); err != nil { // 26 bytes: no padding
			return st, err
		}
	}
	return st, nil
}
