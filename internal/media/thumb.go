package media

import (
	"bytes"
	"encoding/base64"
	"errors"
	"image"
	"image/color"
	"image/jpeg"

	"golang.org/x/image/draw"
)

// Thumbnail limits.
const (
	// ThumbnailMaxBytes bounds a thumbnail's whole data: URL.
	ThumbnailMaxBytes = 10 * 1024
	// MaxDecodePixels is the largest image decoded for a thumbnail (50
	// megapixels); larger ones are stored without one, never decoded.
	MaxDecodePixels = 50_000_000
	// MaxDecodeBytes bounds the memory one decode may take, estimated from
	// the header before decoding (pixels times bytes per pixel, and the
	// coefficients a progressive JPEG keeps).
	MaxDecodeBytes = 320 << 20
	// thumbSide is the first size tried for the thumbnail's longer side.
	thumbSide = 192
)

const dataURLPrefix = "data:image/jpeg;base64,"

// decodeCost estimates the bytes decoding an image of cfg takes.
func decodeCost(cfg image.Config, format string, progressive bool) int64 {
	px := int64(cfg.Width) * int64(cfg.Height)
	var per int64
	switch cfg.ColorModel {
	case color.GrayModel, color.AlphaModel:
		per = 1
	case color.Gray16Model, color.Alpha16Model:
		per = 2
	case color.RGBA64Model, color.NRGBA64Model:
		per = 8
	case color.YCbCrModel:
		per = 3 // 4:4:4 at worst
	default:
		per = 4
	}
	if _, ok := cfg.ColorModel.(color.Palette); ok {
		per = 1
	}
	switch format {
	case "jpeg":
		if progressive {
			per += 4 * 3 // an int32 coefficient per sample, kept until the end
		}
	case "webp":
		per += 4 // the lossless decoder's pixel array
	}
	return px * per
}

// decodable says whether an image of cfg may be decoded for a thumbnail.
func decodable(cfg image.Config, format string, progressive bool) bool {
	px := int64(cfg.Width) * int64(cfg.Height)
	return cfg.Width > 0 && cfg.Height > 0 && px <= MaxDecodePixels &&
		decodeCost(cfg, format, progressive) <= MaxDecodeBytes
}

// thumbnail renders img (stored pixels; orientation tells how to show
// them) as a JPEG data: URL under ThumbnailMaxBytes: shrunk to fit
// thumbSide, upright, transparent parts on white, then smaller and at lower
// quality until it fits.
func thumbnail(img image.Image, orientation int) (string, error) {
	b := img.Bounds()
	if b.Empty() {
		return "", errors.New("empty image")
	}
	// A box filter brings a large image near twice the thumbnail size in
	// one pass over its pixels; a good filter does the rest.
	base := boxShrink(img, max(1, max(b.Dx(), b.Dy())/(2*thumbSide)))
	var buf bytes.Buffer
	for side := thumbSide; side >= 16; side = side * 3 / 4 {
		small := scaleToFit(base, side)
		small = orient(small, orientation)
		flattenOnWhite(small)
		for _, q := range []int{70, 55, 40, 30} {
			buf.Reset()
			if err := jpeg.Encode(&buf, small, &jpeg.Options{Quality: q}); err != nil {
				return "", err
			}
			if len(dataURLPrefix)+base64.StdEncoding.EncodedLen(buf.Len()) < ThumbnailMaxBytes {
				return dataURLPrefix + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
			}
		}
	}
	return "", errors.New("no thumbnail small enough")
}

// scaleToFit scales src so that its longer side is at most side.
func scaleToFit(src *image.RGBA, side int) *image.RGBA {
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	if w <= side && h <= side {
		out := image.NewRGBA(image.Rect(0, 0, w, h))
		copy(out.Pix, src.Pix)
		return out
	}
	if w >= h {
		w, h = side, max(1, h*side/w)
	} else {
		w, h = max(1, w*side/h), side
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	return dst
}

// boxShrink averages k×k blocks of img into an RGBA image (premultiplied),
// reading each source pixel once. Fast paths cover what the decoders
// return most: YCbCr (JPEG, lossy WebP), NRGBA and RGBA (PNG, lossless
// WebP), Gray and Paletted (PNG, GIF).
func boxShrink(img image.Image, k int) *image.RGBA {
	b := img.Bounds()
	w, h := max(1, b.Dx()/k), max(1, b.Dy()/k)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	sums := make([]uint64, 4*w)
	for oy := range h {
		clear(sums)
		y0, y1 := b.Min.Y+oy*k, min(b.Min.Y+(oy+1)*k, b.Max.Y)
		for y := y0; y < y1; y++ {
			addRow(img, sums, y, b.Min.X, k, w)
		}
		n := uint64((y1 - y0) * k)
		row := dst.Pix[oy*dst.Stride:]
		_, ycc := img.(*image.YCbCr)
		for ox := range w {
			for c := range 4 {
				row[4*ox+c] = uint8(sums[4*ox+c] / n)
			}
			if ycc {
				row[4*ox], row[4*ox+1], row[4*ox+2] = color.YCbCrToRGB(row[4*ox], row[4*ox+1], row[4*ox+2])
			}
		}
	}
	return dst
}

// addRow adds row y of img, in k-wide groups starting at x0, to sums
// (premultiplied 8-bit RGBA per output pixel).
func addRow(img image.Image, sums []uint64, y, x0, k, w int) {
	switch src := img.(type) {
	case *image.YCbCr:
		// Sums of Y, Cb, Cr (converted once per output pixel by ycbcrSums):
		// YCbCr to RGB is affine, so the average converts the same.
		yrow := src.Y[(y-src.Rect.Min.Y)*src.YStride-src.Rect.Min.X:]
		for ox := range w {
			s := sums[4*ox : 4*ox+4]
			for x := x0 + ox*k; x < x0+(ox+1)*k; x++ {
				ci := src.COffset(x, y)
				s[0] += uint64(yrow[x])
				s[1] += uint64(src.Cb[ci])
				s[2] += uint64(src.Cr[ci])
			}
			s[3] += uint64(255 * k)
		}
	case *image.NRGBA:
		for ox := range w {
			s := sums[4*ox : 4*ox+4]
			p := src.Pix[src.PixOffset(x0+ox*k, y):]
			for i := 0; i < k; i++ {
				a := uint64(p[4*i+3])
				s[0] += uint64(p[4*i]) * a / 255
				s[1] += uint64(p[4*i+1]) * a / 255
				s[2] += uint64(p[4*i+2]) * a / 255
				s[3] += a
			}
		}
	case *image.RGBA:
		for ox := range w {
			s := sums[4*ox : 4*ox+4]
			p := src.Pix[src.PixOffset(x0+ox*k, y):]
			for i := 0; i < k; i++ {
				s[0] += uint64(p[4*i])
				s[1] += uint64(p[4*i+1])
				s[2] += uint64(p[4*i+2])
				s[3] += uint64(p[4*i+3])
			}
		}
	case *image.Gray:
		for ox := range w {
			s := sums[4*ox : 4*ox+4]
			p := src.Pix[src.PixOffset(x0+ox*k, y):]
			for i := 0; i < k; i++ {
				v := uint64(p[i])
				s[0] += v
				s[1] += v
				s[2] += v
				s[3] += 255
			}
		}
	case *image.Paletted:
		pal := make([][4]uint64, len(src.Palette))
		for i, c := range src.Palette {
			r, g, bb, a := c.RGBA()
			pal[i] = [4]uint64{uint64(r >> 8), uint64(g >> 8), uint64(bb >> 8), uint64(a >> 8)}
		}
		for ox := range w {
			s := sums[4*ox : 4*ox+4]
			p := src.Pix[src.PixOffset(x0+ox*k, y):]
			for i := 0; i < k; i++ {
				if int(p[i]) < len(pal) {
					c := pal[p[i]]
					s[0] += c[0]
					s[1] += c[1]
					s[2] += c[2]
					s[3] += c[3]
				}
			}
		}
	default:
		for ox := range w {
			s := sums[4*ox : 4*ox+4]
			for x := x0 + ox*k; x < x0+(ox+1)*k; x++ {
				r, g, bb, a := img.At(x, y).RGBA()
				s[0] += uint64(r >> 8)
				s[1] += uint64(g >> 8)
				s[2] += uint64(bb >> 8)
				s[3] += uint64(a >> 8)
			}
		}
	}
}

// flattenOnWhite composites a premultiplied image over white, in place.
func flattenOnWhite(m *image.RGBA) {
	for i := 0; i < len(m.Pix); i += 4 {
		t := 255 - uint16(m.Pix[i+3])
		m.Pix[i] = uint8(uint16(m.Pix[i]) + t)
		m.Pix[i+1] = uint8(uint16(m.Pix[i+1]) + t)
		m.Pix[i+2] = uint8(uint16(m.Pix[i+2]) + t)
		m.Pix[i+3] = 255
	}
}

// orient returns src transformed as an EXIF orientation says, so that it
// displays upright.
func orient(src *image.RGBA, o int) *image.RGBA {
	if o <= OrientNormal || o > OrientRotate90CCW {
		return src
	}
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	dw, dh := w, h
	if swapsAxes(o) {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case OrientFlipH:
				dx, dy = w-1-x, y
			case OrientRotate180:
				dx, dy = w-1-x, h-1-y
			case OrientFlipV:
				dx, dy = x, h-1-y
			case OrientTranspose:
				dx, dy = y, x
			case OrientRotate90CW:
				dx, dy = h-1-y, x
			case OrientTransverse:
				dx, dy = h-1-y, w-1-x
			case OrientRotate90CCW:
				dx, dy = y, w-1-x
			}
			copy(dst.Pix[dst.PixOffset(dx, dy):dst.PixOffset(dx, dy)+4], src.Pix[src.PixOffset(x, y):src.PixOffset(x, y)+4])
		}
	}
	return dst
}
