package media

import (
	"bytes"
	"net/http"
	"strings"
)

// SniffLen is how many leading bytes Sniff looks at.
const SniffLen = 4096

// Sniff decides a content type from the first bytes of a file, never from
// what the client claims: http.DetectContentType (the WHATWG sniffing
// algorithm), refined for the containers chat apps meet that it lumps
// together or misses (audio-only MP4 and WebM, QuickTime, 3GPP, HEIF, Ogg
// Opus/Vorbis voice notes).
func Sniff(head []byte) string {
	ct := http.DetectContentType(head)
	switch {
	case ct == "video/mp4" || ct == "application/octet-stream" && isFtyp(head):
		if t := ftypType(head); t != "" {
			return t
		}
	case ct == "application/ogg":
		switch {
		case bytes.Contains(head, []byte("OpusHead")), bytes.Contains(head, []byte("\x01vorbis")):
			return "audio/ogg"
		case bytes.Contains(head, []byte("\x80theora")):
			return "video/ogg"
		}
	case ct == "video/webm":
		// Matroska codec ids: a voice note recorded by a browser has an
		// audio track and no video track.
		if !bytes.Contains(head, []byte("V_")) && (bytes.Contains(head, []byte("A_OPUS")) || bytes.Contains(head, []byte("A_VORBIS"))) {
			return "audio/webm"
		}
	}
	return ct
}

func isFtyp(head []byte) bool { return len(head) >= 12 && string(head[4:8]) == "ftyp" }

// ftypType reads an ISO base media file's major brand.
func ftypType(head []byte) string {
	if !isFtyp(head) {
		return ""
	}
	switch brand := string(head[8:12]); {
	case brand == "M4A " || brand == "M4B " || brand == "F4A ":
		return "audio/mp4"
	case brand == "qt  ":
		return "video/quicktime"
	case strings.HasPrefix(brand, "3gp") || strings.HasPrefix(brand, "3g2"):
		return "video/3gpp"
	case brand == "heic" || brand == "heix" || brand == "mif1" || brand == "msf1" || brand == "heif":
		return "image/heif"
	case brand == "avif" || brand == "avis":
		return "image/avif"
	}
	return "video/mp4"
}

// inlineTypes are the types a browser may show on our origin: media that
// cannot run script. Everything else is served as an attachment.
var inlineTypes = map[string]bool{
	"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mpeg": true, "audio/mp4": true, "audio/ogg": true, "audio/webm": true, "audio/wave": true,
	"audio/aiff": true, "audio/basic": true, "audio/midi": true,
}

// Inline reports whether a stored content type may be shown inline
// (Content-Disposition: inline); anything else, HTML and SVG above all, is
// only ever downloaded.
func Inline(contentType string) bool { return inlineTypes[contentType] }
