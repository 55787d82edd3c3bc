package media

import "encoding/binary"

// EXIF orientation values (TIFF tag 0x0112): how the stored pixels must be
// transformed to be displayed upright.
const (
	OrientNormal      = 1
	OrientFlipH       = 2
	OrientRotate180   = 3
	OrientFlipV       = 4
	OrientTranspose   = 5 // flip over the top-left/bottom-right diagonal
	OrientRotate90CW  = 6
	OrientTransverse  = 7
	OrientRotate90CCW = 8
)

const tagOrientation = 0x0112

// exifOrientation reads the orientation tag from a TIFF structure (the body
// of a JPEG "Exif\0\0" APP1 segment, a PNG eXIf chunk, a WebP EXIF chunk).
// It returns 1 when there is none or the structure is malformed.
func exifOrientation(tiff []byte) int {
	if len(tiff) < 8 {
		return OrientNormal
	}
	var bo binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return OrientNormal
	}
	if bo.Uint16(tiff[2:4]) != 42 {
		return OrientNormal
	}
	ifd := int64(bo.Uint32(tiff[4:8]))
	if ifd < 8 || ifd+2 > int64(len(tiff)) {
		return OrientNormal
	}
	n := int64(bo.Uint16(tiff[ifd : ifd+2]))
	for i := range n {
		e := ifd + 2 + 12*i
		if e+12 > int64(len(tiff)) {
			break
		}
		if bo.Uint16(tiff[e:e+2]) != tagOrientation {
			continue
		}
		typ, count := bo.Uint16(tiff[e+2:e+4]), bo.Uint32(tiff[e+4:e+8])
		if typ != 3 || count != 1 { // SHORT, one value, stored in the entry
			return OrientNormal
		}
		if o := int(bo.Uint16(tiff[e+8 : e+10])); o >= OrientNormal && o <= OrientRotate90CCW {
			return o
		}
		return OrientNormal
	}
	return OrientNormal
}

// minimalEXIF is a TIFF structure holding nothing but an orientation: what
// stored images keep of their EXIF, so that they still display upright
// while location, camera, times and embedded thumbnails are gone.
func minimalEXIF(orientation int) []byte {
	b := make([]byte, 0, 26)
	b = append(b, 'M', 'M', 0, 42, 0, 0, 0, 8) // big endian, IFD0 at offset 8
	b = append(b, 0, 1)                        // one entry
	b = binary.BigEndian.AppendUint16(b, tagOrientation)
	b = append(b, 0, 3, 0, 0, 0, 1) // SHORT, count 1
	b = binary.BigEndian.AppendUint16(b, uint16(orientation))
	b = append(b, 0, 0)       // padding of the value field
	b = append(b, 0, 0, 0, 0) // no next IFD
	return b
}

// swapsAxes reports whether an orientation turns the image by 90 degrees
// (the displayed width is the stored height).
func swapsAxes(orientation int) bool { return orientation >= OrientTranspose }
