package media

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config names an S3-compatible bucket.
type S3Config struct {
	// Endpoint is host:port, or a URL whose scheme picks HTTP or HTTPS
	// ("http://127.0.0.1:9000").
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string // "" lets the server decide
	// Insecure talks plain HTTP instead of HTTPS (a local test server).
	Insecure bool
	// Prefix is prepended to every key ("parley/"), "" for none.
	Prefix string
	// Transport replaces the HTTP transport (tests); nil uses the default.
	Transport http.RoundTripper
}

// S3 keeps blobs as objects of an S3-compatible bucket (AWS S3, MinIO,
// SeaweedFS, versitygw, Garage...). A PUT, and a multipart upload once
// completed, is atomic in S3, which gives Put its promise.
type S3 struct {
	c      *minio.Client
	bucket string
	prefix string
}

var _ Blobs = (*S3)(nil)

// s3PartSize is the multipart part size: it bounds what one upload holds in
// memory when the reader cannot be read at offsets.
const s3PartSize = 16 << 20

// NewS3 connects to the bucket, creating it if it does not exist.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	endpoint, secure := cfg.Endpoint, !cfg.Insecure
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("media: s3 endpoint %q: want host:port or an http(s) URL", cfg.Endpoint)
		}
		endpoint = u.Host
		secure = secure && u.Scheme == "https"
	}
	c, err := minio.New(endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    secure,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("media: s3 client: %w", err)
	}
	s := &S3{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, s.err("bucket "+cfg.Bucket, err)
	}
	if !ok {
		if err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			code := minio.ToErrorResponse(err).Code
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, s.err("create bucket "+cfg.Bucket, err)
			}
		}
	}
	return s, nil
}

func (s *S3) err(op string, err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket" {
		return ErrBlobNotFound
	}
	return unavailable("s3 "+op, err)
}

// Put implements Blobs.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if size < 0 {
		return sizeMismatch(key, size, 0)
	}
	// A file (or any reader at offsets) goes as a section: minio-go then
	// uploads parts in parallel straight from it, buffering nothing.
	var body io.Reader
	cr := &countReader{r: r}
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok {
		cur, err := ra.Seek(0, io.SeekCurrent)
		if err != nil {
			return unavailable("put "+key, err)
		}
		end, err := ra.Seek(0, io.SeekEnd)
		if err == nil {
			_, err = ra.Seek(cur, io.SeekStart)
		}
		if err != nil {
			return unavailable("put "+key, err)
		}
		if end-cur != size {
			return sizeMismatch(key, size, end-cur)
		}
		body = io.NewSectionReader(ra, cur, size)
		cr.n = size
	} else {
		body = cr
	}
	if size == 0 {
		body = http.NoBody // else net/http sends an empty body chunked, without a length
	}
	_, err := s.c.PutObject(ctx, s.bucket, s.prefix+key, body, size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    s3PartSize,
		// UNSIGNED-PAYLOAD, as minio-go does over HTTPS anyway: no SHA-256
		// pass over the bytes, and no aws-chunked signature framing, which
		// some S3 implementations mishandle in multipart parts.
		DisableContentSha256: true,
	})
	if err != nil {
		if cr.n != size {
			return sizeMismatch(key, size, cr.n)
		}
		return s.err("put "+key, err)
	}
	return nil
}

// countReader counts what was read.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Open implements Blobs. The object is fetched lazily: each Seek followed by
// a Read is one ranged GET.
func (s *S3) Open(ctx context.Context, key string) (io.ReadSeekCloser, BlobInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, BlobInfo{}, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, BlobInfo{}, s.err("get "+key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, BlobInfo{}, s.err("get "+key, err)
	}
	return obj, BlobInfo{Size: st.Size, ModTime: st.LastModified}, nil
}

// Stat implements Blobs.
func (s *S3) Stat(ctx context.Context, key string) (BlobInfo, error) {
	if err := checkKey(key); err != nil {
		return BlobInfo{}, err
	}
	st, err := s.c.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return BlobInfo{}, s.err("stat "+key, err)
	}
	return BlobInfo{Size: st.Size, ModTime: st.LastModified}, nil
}

// Delete implements Blobs.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		if err := s.err("delete "+key, err); err == ErrBlobNotFound {
			return nil
		}
		return s.err("delete "+key, err)
	}
	return nil
}
