package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The strippers copy an image from src to dst without its metadata: EXIF
// (camera, time, GPS location, embedded thumbnail), XMP, IPTC, comments,
// text chunks, maker data, and anything after the image's end (phones
// append motion-photo videos and trailers with location there). They keep
// what rendering needs, byte for byte: no pixel is decoded or re-encoded, so
// stripping streams in constant memory. The EXIF orientation survives as a
// minimal EXIF structure holding nothing else (see minimalEXIF), so the
// image still displays upright.

// stripped is what a stripper learned on the way.
type stripped struct {
	orientation int
	progressive bool // a progressive JPEG (its decoder holds every coefficient)
	truncated   bool // the image data ended early; kept as it was
}

// errMalformed is a structure the stripper cannot follow.
var errMalformed = errors.New("malformed image structure")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// maxJPEGHeader bounds the APP segments a JPEG stripper holds back while it
// looks for the orientation (ICC profiles take a few 64 KiB segments).
const maxJPEGHeader = 4 << 20

// stripJPEG walks the JPEG markers. Kept: APP0 JFIF, APP2 ICC_PROFILE
// (colour), APP14 Adobe (colour transform: dropping it would change the
// colours of some files), and every non-APP segment; the entropy-coded
// data is copied as is. Dropped: APP1 (EXIF, XMP), the other APPn (MPF,
// IPTC, maker data), COM, and everything after EOI.
func stripJPEG(dst io.Writer, src io.Reader) (stripped, error) {
	st := stripped{orientation: OrientNormal}
	br := bufio.NewReaderSize(src, 64<<10)
	var soi [2]byte
	if _, err := io.ReadFull(br, soi[:]); err != nil || soi != [2]byte{0xFF, 0xD8} {
		return st, malformed("no JPEG start of image")
	}
	if _, err := dst.Write(soi[:]); err != nil {
		return st, err
	}
	// APP segments are held back until the first other segment: only then
	// is the orientation known, and the minimal EXIF goes right after JFIF.
	var jfif []byte
	var held bytes.Buffer
	headerDone := false
	flushHeader := func() error {
		headerDone = true
		if _, err := dst.Write(jfif); err != nil {
			return err
		}
		if st.orientation != OrientNormal {
			exif := append([]byte("Exif\x00\x00"), minimalEXIF(st.orientation)...)
			seg := []byte{0xFF, 0xE1, 0, 0}
			binary.BigEndian.PutUint16(seg[2:], uint16(len(exif)+2))
			if _, err := dst.Write(append(seg, exif...)); err != nil {
				return err
			}
		}
		_, err := held.WriteTo(dst)
		return err
	}
	marker, err := nextMarker(br)
	for {
		if err != nil {
			return st, malformed("JPEG ends before its image data")
		}
		switch {
		case marker == 0xD9: // EOI: the end; what follows is dropped
			if !headerDone {
				if err := flushHeader(); err != nil {
					return st, err
				}
			}
			_, err := dst.Write([]byte{0xFF, 0xD9})
			return st, err
		case marker >= 0xD0 && marker <= 0xD7 || marker == 0x01: // no length
			if _, err := dst.Write([]byte{0xFF, marker}); err != nil {
				return st, err
			}
			marker, err = nextMarker(br)
			continue
		}
		var lb [2]byte
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return st, malformed("JPEG segment without length")
		}
		n := int(binary.BigEndian.Uint16(lb[:])) - 2
		if n < 0 {
			return st, malformed("JPEG segment length %d", n+2)
		}
		isApp := marker >= 0xE0 && marker <= 0xEF || marker == 0xFE
		if isApp && !headerDone || isApp && marker != 0xFE {
			payload := make([]byte, n)
			if _, err := io.ReadFull(br, payload); err != nil {
				return st, malformed("JPEG segment cut short")
			}
			keep := false
			switch {
			case marker == 0xE0 && bytes.HasPrefix(payload, []byte("JFIF\x00")):
				if !headerDone && jfif == nil {
					jfif = append([]byte{0xFF, 0xE0, lb[0], lb[1]}, payload...)
					break
				}
				keep = true
			case marker == 0xE1 && bytes.HasPrefix(payload, []byte("Exif\x00\x00")):
				if o := exifOrientation(payload[6:]); o != OrientNormal && !headerDone {
					st.orientation = o
				}
			case marker == 0xE2 && bytes.HasPrefix(payload, []byte("ICC_PROFILE\x00")),
				marker == 0xEE && bytes.HasPrefix(payload, []byte("Adobe")):
				keep = true
			}
			if keep {
				seg := append([]byte{0xFF, marker, lb[0], lb[1]}, payload...)
				if headerDone {
					if _, err := dst.Write(seg); err != nil {
						return st, err
					}
				} else {
					if held.Len()+len(seg) > maxJPEGHeader {
						return st, malformed("JPEG header segments over %d bytes", maxJPEGHeader)
					}
					held.Write(seg)
				}
			}
			marker, err = nextMarker(br)
			continue
		}
		if marker == 0xFE { // a comment after the header
			if _, err := br.Discard(n); err != nil {
				return st, malformed("JPEG segment cut short")
			}
			marker, err = nextMarker(br)
			continue
		}
		if !headerDone {
			if err := flushHeader(); err != nil {
				return st, err
			}
		}
		switch marker {
		case 0xC2, 0xC6, 0xCA, 0xCE:
			st.progressive = true
		}
		if _, err := dst.Write([]byte{0xFF, marker, lb[0], lb[1]}); err != nil {
			return st, err
		}
		if m, err := io.CopyN(dst, br, int64(n)); err != nil {
			if m < int64(n) && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return st, malformed("JPEG segment cut short")
			}
			return st, err
		}
		if marker != 0xDA { // not SOS: the next marker follows
			marker, err = nextMarker(br)
			continue
		}
		marker, err = copyScan(dst, br)
		if err == io.EOF { // the file ends inside the image data: keep it so
			st.truncated = true
			return st, nil
		}
	}
}

// nextMarker reads a marker: 0xFF, optional fill bytes 0xFF, the code.
func nextMarker(br *bufio.Reader) (byte, error) {
	b, err := br.ReadByte()
	if err != nil {
		return 0, err
	}
	if b != 0xFF {
		return 0, malformed("JPEG marker expected, found byte %#x", b)
	}
	for {
		if b, err = br.ReadByte(); err != nil {
			return 0, err
		}
		if b != 0xFF {
			return b, nil
		}
	}
}

// copyScan copies entropy-coded data up to the next marker (not a stuffed
// 0xFF00 and not a restart marker) and returns that marker's code.
func copyScan(dst io.Writer, br *bufio.Reader) (byte, error) {
	for {
		chunk, err := br.ReadSlice(0xFF)
		switch {
		case err == bufio.ErrBufferFull:
			if _, err := dst.Write(chunk); err != nil {
				return 0, err
			}
			continue
		case err != nil: // EOF inside the scan
			if _, werr := dst.Write(chunk); werr != nil {
				return 0, werr
			}
			return 0, io.EOF
		}
		if _, err := dst.Write(chunk[:len(chunk)-1]); err != nil {
			return 0, err
		}
		b, err := br.ReadByte()
		for err == nil && b == 0xFF {
			b, err = br.ReadByte()
		}
		if err != nil {
			return 0, io.EOF
		}
		if b == 0x00 || b >= 0xD0 && b <= 0xD7 {
			if _, err := dst.Write([]byte{0xFF, b}); err != nil {
				return 0, err
			}
			continue
		}
		return b, nil
	}
}

// pngKeep are the PNG chunks kept: the critical ones and those that affect
// rendering (transparency, colour, gamma, animation).
var pngKeep = map[string]bool{
	"IHDR": true, "PLTE": true, "IDAT": true, "IEND": true, "tRNS": true, "gAMA": true, "cHRM": true,
	"sRGB": true, "iCCP": true, "sBIT": true, "bKGD": true, "pHYs": true, "hIST": true, "cICP": true,
	"mDCV": true, "cLLi": true, "acTL": true, "fcTL": true, "fdAT": true,
}

const pngSignature = "\x89PNG\r\n\x1a\n"

// stripPNG copies the chunks of pngKeep, in order, up to IEND. Text
// (tEXt, zTXt, iTXt), time, eXIf and unknown chunks are dropped; an eXIf
// with an orientation becomes a minimal one.
func stripPNG(dst io.Writer, src io.Reader) (stripped, error) {
	st := stripped{orientation: OrientNormal}
	br := bufio.NewReaderSize(src, 64<<10)
	sig := make([]byte, 8)
	if _, err := io.ReadFull(br, sig); err != nil || string(sig) != pngSignature {
		return st, malformed("no PNG signature")
	}
	if _, err := dst.Write(sig); err != nil {
		return st, err
	}
	sawData := false
	for {
		var h [8]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if sawData {
				st.truncated = true
				return st, nil
			}
			return st, malformed("PNG ends before its image data")
		}
		n := int64(binary.BigEndian.Uint32(h[:4]))
		typ := string(h[4:8])
		if n > 1<<31-1 {
			return st, malformed("PNG chunk length %d", n)
		}
		switch {
		case typ == "eXIf" && n <= 1<<20:
			body := make([]byte, n+4)
			if _, err := io.ReadFull(br, body); err != nil {
				return st, malformed("PNG chunk cut short")
			}
			if o := exifOrientation(body[:n]); o != OrientNormal {
				st.orientation = o
				if _, err := dst.Write(pngChunk("eXIf", minimalEXIF(o))); err != nil {
					return st, err
				}
			}
			continue
		case !pngKeep[typ]:
			if _, err := br.Discard(int(n + 4)); err != nil {
				return st, malformed("PNG chunk cut short")
			}
			continue
		}
		if _, err := dst.Write(h[:]); err != nil {
			return st, err
		}
		if m, err := io.CopyN(dst, br, n+4); err != nil {
			if m < n+4 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				if sawData || typ == "IDAT" {
					st.truncated = true
					return st, nil
				}
				return st, malformed("PNG chunk cut short")
			}
			return st, err
		}
		switch typ {
		case "IDAT", "fdAT":
			sawData = true
		case "IEND":
			return st, nil
		}
	}
}

// pngChunk frames data as a PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// stripGIF copies the GIF blocks except comments and application
// extensions other than the animation loop count (XMP lives there), up to
// the trailer.
func stripGIF(dst io.Writer, src io.Reader) (stripped, error) {
	st := stripped{orientation: OrientNormal}
	br := bufio.NewReaderSize(src, 64<<10)
	head := make([]byte, 13)
	if _, err := io.ReadFull(br, head); err != nil || (string(head[:6]) != "GIF87a" && string(head[:6]) != "GIF89a") {
		return st, malformed("no GIF header")
	}
	if _, err := dst.Write(head); err != nil {
		return st, err
	}
	if head[10]&0x80 != 0 { // global colour table
		if _, err := io.CopyN(dst, br, 3<<(head[10]&7+1)); err != nil {
			return st, malformed("GIF colour table cut short")
		}
	}
	sawImage := false
	for {
		b, err := br.ReadByte()
		if err != nil {
			if sawImage {
				st.truncated = true
				return st, nil
			}
			return st, malformed("GIF ends before its image data")
		}
		switch b {
		case 0x3B: // trailer: the end
			_, err := dst.Write([]byte{0x3B})
			return st, err
		case 0x21:
			label, err := br.ReadByte()
			if err != nil {
				return st, malformed("GIF extension cut short")
			}
			keep := label == 0xF9 || label == 0x01
			var first []byte
			if label == 0xFF { // application: keep only the loop count
				n, err := br.ReadByte()
				if err != nil {
					return st, malformed("GIF extension cut short")
				}
				first = make([]byte, n)
				if _, err := io.ReadFull(br, first); err != nil {
					return st, malformed("GIF extension cut short")
				}
				keep = string(first) == "NETSCAPE2.0" || string(first) == "ANIMEXTS1.0"
				first = append([]byte{n}, first...)
			}
			w := io.Discard
			if keep {
				w = dst
				if _, err := dst.Write(append([]byte{0x21, label}, first...)); err != nil {
					return st, err
				}
			}
			if err := copySubBlocks(w, br); err != nil {
				return st, err
			}
		case 0x2C:
			desc := make([]byte, 10) // descriptor (9) + LZW minimum code size, or colour table first
			if _, err := io.ReadFull(br, desc[:9]); err != nil {
				return st, malformed("GIF image descriptor cut short")
			}
			if _, err := dst.Write(append([]byte{0x2C}, desc[:9]...)); err != nil {
				return st, err
			}
			if desc[8]&0x80 != 0 {
				if _, err := io.CopyN(dst, br, 3<<(desc[8]&7+1)); err != nil {
					return st, malformed("GIF colour table cut short")
				}
			}
			if _, err := io.CopyN(dst, br, 1); err != nil {
				return st, malformed("GIF image cut short")
			}
			sawImage = true
			if err := copySubBlocks(dst, br); err != nil {
				if errors.Is(err, errMalformed) {
					st.truncated = true
					return st, nil
				}
				return st, err
			}
		default:
			return st, malformed("unknown GIF block %#x", b)
		}
	}
}

// copySubBlocks copies GIF data sub-blocks up to and including the empty one.
func copySubBlocks(w io.Writer, br *bufio.Reader) error {
	for {
		n, err := br.ReadByte()
		if err != nil {
			return malformed("GIF sub-block cut short")
		}
		if _, err := w.Write([]byte{n}); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if _, err := io.CopyN(w, br, int64(n)); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return malformed("GIF sub-block cut short")
			}
			return err
		}
	}
}
