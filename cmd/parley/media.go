package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/client"
)

// progressBar draws "  42% [=======>     ] 42.0 MB / 100.0 MB  12.3 MB/s"
// on one line of stderr, at most ten times a second.
type progressBar struct {
	w     io.Writer
	label string
	start time.Time

	mu       sync.Mutex
	last     time.Time
	lastDone int64
	drawn    bool
	done     bool
}

func newProgressBar(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, start: time.Now()}
}

func (p *progressBar) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	switch {
	case p.done, p.drawn && done == p.lastDone:
		return
	case now.Sub(p.last) < 100*time.Millisecond && done < total:
		return
	}
	p.last, p.lastDone, p.drawn = now, done, true
	const width = 30
	pct, fill := 0, 0
	if total > 0 {
		pct = int(done * 100 / total)
		fill = int(done * width / total)
	}
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r%s %3d%% [%s] %s / %s  %s/s ", p.label, pct, bar, humanBytes(done), humanBytes(total), humanBytes(int64(rate)))
}

// finish ends the bar's line.
func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done {
		p.done = true
		fmt.Fprintln(p.w)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// uploadState remembers unfinished uploads, so that running the same
// `parley send --file` again resumes instead of starting over. It lives next
// to the config file.
type uploadState map[string]string // file key -> upload URL

func (a *app) uploadStatePath() string { return a.configPath + ".uploads" }

func (a *app) loadUploadState() uploadState {
	st := uploadState{}
	b, err := os.ReadFile(a.uploadStatePath())
	if err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

func (a *app) saveUploadState(st uploadState) {
	if len(st) == 0 {
		if err := os.Remove(a.uploadStatePath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(a.stderr, "parley: %v\n", err)
		}
		return
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := a.uploadStatePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, a.uploadStatePath())
	}
}

// uploadKey names one version of one file on one server and account.
func (a *app) uploadKey(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	return fmt.Sprintf("%s|%s|%s|%d|%d", a.server(), a.cfg.UserID, abs, st.Size(), st.ModTime().UnixNano()), nil
}

// uploadFile uploads a file resumably with a progress bar on stderr. An
// earlier interrupted upload of the same file is resumed.
func (a *app) uploadFile(ctx context.Context, c *client.Client, path string) (client.Media, error) {
	key, err := a.uploadKey(path)
	if err != nil {
		return client.Media{}, err
	}
	st := a.loadUploadState()
	resume := st[key]
	bar := newProgressBar(a.stderr, filepath.Base(path))
	if resume != "" {
		fmt.Fprintf(a.stderr, "resuming the upload of %s\n", path)
	}
	m, err := c.UploadFile(ctx, path, client.UploadOptions{
		ResumeURL: resume,
		OnStart: func(u string) {
			st[key] = u
			a.saveUploadState(st)
		},
		Progress: bar.update,
	})
	bar.finish()
	if err != nil {
		if ctx.Err() != nil || !errors.As(err, new(*client.APIError)) {
			return client.Media{}, fmt.Errorf("%w\nRun the same command again to resume the upload", err)
		}
		delete(st, key) // the server refused the file: do not resume it
		a.saveUploadState(st)
		return client.Media{}, err
	}
	delete(st, key)
	a.saveUploadState(st)
	return m, nil
}

var downloadCmd = &command{
	name:     "download",
	synopsis: "<media-id>",
	summary:  "download a shared file",
	help: `Downloads a media item (a photo, video, voice note or file sent in one of
your conversations, or uploaded by you), with a progress bar on stderr.

It is written to -o PATH; without -o, to the file name the sender gave (in the
current directory), else to the media id with an extension for its type. An
existing file is not replaced unless --force. -o - writes to stdout.`,
	run: runDownload,
}

func runDownload(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.newFlagSet(cmd)
	out := fs.String("o", "", "write to this `path` (- for stdout)")
	force := fs.Bool("force", false, "replace an existing file")
	args, err := a.parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef(cmd.name, "want exactly one media id")
	}
	id := args[0]
	c, err := a.session(nil)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err := c.Download(ctx, id, a.stdout, nil)
		return err
	}
	dest := *out
	if dest == "" {
		info, err := c.MediaInfo(ctx, id)
		if err != nil {
			return err
		}
		dest = defaultDownloadName(info)
	}
	if !*force {
		if _, err := os.Stat(dest); err == nil {
			return fmt.Errorf("%s exists (use --force to replace it, or -o)", dest)
		}
	}
	part := dest + ".part"
	f, err := os.Create(part)
	if err != nil {
		return err
	}
	bar := newProgressBar(a.stderr, filepath.Base(dest))
	d, err := c.Download(ctx, id, f, bar.update)
	bar.finish()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, dest)
	}
	if err != nil {
		os.Remove(part)
		return err
	}
	fmt.Fprintf(a.stdout, "saved %s (%s, %s)\n", dest, d.ContentType, humanBytes(d.Size))
	return nil
}

// defaultDownloadName is the sender's file name (its base only), else the
// media id with an extension for its type.
func defaultDownloadName(m client.Media) string {
	if n := filepath.Base(filepath.Clean("/" + m.Name)); m.Name != "" && n != "/" && n != "." {
		return n
	}
	name := m.MediaID
	ct, _, _ := mime.ParseMediaType(m.ContentType)
	switch ct {
	case "image/jpeg":
		return name + ".jpg"
	case "text/plain":
		return name + ".txt"
	}
	if exts, _ := mime.ExtensionsByType(ct); len(exts) > 0 {
		return name + exts[0]
	}
	return name
}
