package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/parley-chat/parley/internal/gateway"
	"github.com/parley-chat/parley/internal/media"
)

// setupMedia opens blob storage (S3 when configured, else DataDir/media),
// the resumable-upload state (DataDir/uploads), the processor, and starts
// the collector of media that was never sent.
func (s *Server) setupMedia(ctx context.Context) error {
	cfg := s.cfg
	tmp := filepath.Join(cfg.DataDir, "tmp")
	// Spooled request bodies and stripped copies a crash left behind.
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("cleaning %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	var blobs media.Blobs
	where := filepath.Join(cfg.DataDir, "media")
	if cfg.S3Endpoint != "" {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		b, err := media.NewS3(sctx, media.S3Config{
			Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket, AccessKey: cfg.S3AccessKey,
			SecretKey: cfg.S3SecretKey, Region: cfg.S3Region, Insecure: cfg.S3Insecure,
		})
		if err != nil {
			return fmt.Errorf("opening S3 media storage: %w", err)
		}
		blobs, where = b, "s3://"+cfg.S3Bucket+" at "+cfg.S3Endpoint
	} else {
		b, err := media.NewFS(where)
		if err != nil {
			return err
		}
		blobs = b
	}
	uploads, err := media.OpenUploads(filepath.Join(cfg.DataDir, "uploads"))
	if err != nil {
		return err
	}
	var ff *media.FFmpeg
	if cfg.MediaFFmpeg {
		ff = media.FindFFmpeg()
	}
	if cfg.S3Endpoint == "" && (cfg.Postgres != "" || cfg.NATS != "") {
		s.log.Warn("media is kept on this node's disk: in a cluster the other nodes cannot serve it; set --s3-endpoint (docs/scale-out.md)")
	}
	if cfg.NATS != "" && cfg.AdvertiseURL == "" {
		s.log.Info("no --advertise-url: a resumable upload can be continued only through the node that started it")
	}
	s.log.Info("media", "storage", where, "max_upload_bytes", cfg.MaxUploadBytes, "gc_after", cfg.MediaGCAfter,
		"ffmpeg", ff != nil, "catalogue", s.svc.MediaAvailable())
	s.gw.SetMedia(gateway.MediaDeps{
		Blobs:             blobs,
		Processor:         media.NewProcessor(media.ProcessorConfig{TempDir: tmp, FFmpeg: ff, Logger: s.log}),
		Uploads:           uploads,
		TempDir:           tmp,
		MaxUploadBytes:    cfg.MaxUploadBytes,
		Quota:             cfg.MediaQuota,
		MaxPendingUploads: cfg.MaxPendingUploads,
	})
	s.collector = &media.Collector{Catalog: s.svc, Blobs: blobs, Uploads: uploads, After: cfg.MediaGCAfter,
		Every: min(max(cfg.MediaGCAfter/4, time.Second), time.Hour), Log: s.log}
	gctx, stop := context.WithCancel(context.Background())
	s.gcStop = stop
	if s.svc.MediaAvailable() {
		s.gcDone.Add(1)
		go func() {
			defer s.gcDone.Done()
			s.collector.Run(gctx)
		}()
	}
	return nil
}

// CollectMedia runs one pass of the media collector now (tests, tools): it
// returns how many never-sent media items and stale uploads it deleted.
func (s *Server) CollectMedia(ctx context.Context) (items, uploads int, err error) {
	return s.collector.Collect(ctx)
}
