package media

import (
	"bytes"
	"io"
	"testing"

	"github.com/parley-chat/parley/internal/media/mediatest"
)

// FuzzStrip feeds arbitrary bytes to every metadata stripper and to the
// EXIF parser: none may panic or loop, and what a stripper accepts must be
// no larger than its input plus a minimal EXIF.
func FuzzStrip(f *testing.F) {
	f.Add(mediatest.PhoneJPEG(f, mediatest.Quadrants(16, 8), 6))
	f.Add(mediatest.PhonePNG(f, mediatest.Quadrants(8, 8), 3))
	f.Add(mediatest.CommentedGIF(f))
	f.Add(mediatest.ExtendedWebP(f, 8))
	f.Add(mediatest.BombPNG(20000, 20000))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = exifOrientation(b)
		for name, strip := range map[string]func(io.Writer, []byte) (stripped, error){
			"jpeg": func(w io.Writer, b []byte) (stripped, error) { return stripJPEG(w, bytes.NewReader(b)) },
			"png":  func(w io.Writer, b []byte) (stripped, error) { return stripPNG(w, bytes.NewReader(b)) },
			"gif":  func(w io.Writer, b []byte) (stripped, error) { return stripGIF(w, bytes.NewReader(b)) },
			"webp": func(w io.Writer, b []byte) (stripped, error) { return stripWebP(w, bytes.NewReader(b)) },
		} {
			var out bytes.Buffer
			st, err := strip(&out, b)
			if err != nil {
				continue
			}
			if out.Len() > len(b)+64 {
				t.Fatalf("%s: stripped output %d bytes from %d", name, out.Len(), len(b))
			}
			if st.orientation < OrientNormal || st.orientation > OrientRotate90CCW {
				t.Fatalf("%s: orientation %d", name, st.orientation)
			}
		}
	})
}
