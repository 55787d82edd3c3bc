package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// FFmpeg runs the ffmpeg and ffprobe programs, when installed, for video
// posters, video dimensions and audio/video durations. It is optional:
// without it videos and voice notes are stored without them.
type FFmpeg struct {
	ffmpeg, ffprobe string
	timeout         time.Duration
}

// maxToolOutput bounds what is read from one ffmpeg or ffprobe run.
const maxToolOutput = 16 << 20

// FindFFmpeg looks ffmpeg and ffprobe up on PATH; nil if either is missing.
func FindFFmpeg() *FFmpeg {
	ff, err1 := exec.LookPath("ffmpeg")
	fp, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		return nil
	}
	return &FFmpeg{ffmpeg: ff, ffprobe: fp, timeout: 20 * time.Second}
}

// capped is a buffer that fails once it holds max bytes.
type capped struct {
	bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if c.Len()+len(p) > c.max {
		return 0, errors.New("output too large")
	}
	return c.Buffer.Write(p)
}

// run runs a tool with a deadline and returns its standard output.
func (f *FFmpeg) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &capped{max: maxToolOutput}
	errOut := &capped{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", bin, err, bytes.TrimSpace(errOut.Bytes()))
	}
	return out.Bytes(), nil
}

// probe is what ffprobe says of a file.
type probe struct {
	Width, Height int
	DurationMS    int64
	HasVideo      bool
}

// Probe reads the first video stream's size and the duration.
func (f *FFmpeg) Probe(ctx context.Context, path string) (probe, error) {
	out, err := f.run(ctx, f.ffprobe, "-v", "error", "-show_entries",
		"stream=codec_type,width,height:stream_tags=rotate:format=duration", "-of", "json", "--", path)
	if err != nil {
		return probe{}, err
	}
	var r struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
			Tags      struct {
				Rotate string `json:"rotate"`
			} `json:"tags"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return probe{}, fmt.Errorf("ffprobe output: %w", err)
	}
	var p probe
	for _, s := range r.Streams {
		if s.CodecType == "video" && !p.HasVideo {
			p.HasVideo, p.Width, p.Height = true, s.Width, s.Height
			if s.Tags.Rotate == "90" || s.Tags.Rotate == "270" || s.Tags.Rotate == "-90" {
				p.Width, p.Height = p.Height, p.Width
			}
		}
	}
	if d, err := strconv.ParseFloat(r.Format.Duration, 64); err == nil && d > 0 {
		p.DurationMS = int64(d * 1000)
	}
	return p, nil
}

// Poster renders a video's first frame as a PNG at most 384 pixels wide
// (ffmpeg applies the rotation the file asks for).
func (f *FFmpeg) Poster(ctx context.Context, path string) ([]byte, error) {
	return f.run(ctx, f.ffmpeg, "-nostdin", "-v", "error", "-i", path, "-frames:v", "1",
		"-vf", "scale='min(384,iw)':-2", "-f", "image2pipe", "-c:v", "png", "-")
}
