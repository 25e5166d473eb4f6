// Package objstore keeps immutable blobs by key in S3-compatible object
// storage, which the units of a cluster share: a CU's checkpoints (so any CU
// restores any process) and a gateway's item data. Keys are content
// addresses or item ids, so a blob is written once and never changes; a
// second Put of the same key writes the same bytes.
//
// The client is minio-go: a maintained, small S3 client that speaks to any
// S3-compatible server (AWS, MinIO, Ceph, SeaweedFS, versitygw) with
// path-style or virtual-host addressing, and whose dependency tree is far
// smaller than the AWS SDK's.
package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNotFound is returned by Get for a key that is not stored.
var ErrNotFound = errors.New("objstore: not found")

// Store is a bucket, optionally under a key prefix.
type Store struct {
	c      *minio.Client
	bucket string
	prefix string
	where  string // for errors and logs, without credentials
}

// Open connects to the bucket named by an S3 URL:
//
//	http://ACCESS_KEY:SECRET_KEY@127.0.0.1:7070/bucket/optional/prefix?region=us-east-1
//
// https means TLS. Without user info, the keys come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. The bucket is created when it does not exist.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("objstore: the S3 URL must start with http:// or https://, not %q", u.Scheme)
	}
	path := strings.Trim(u.Path, "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return nil, errors.New("objstore: the S3 URL names no bucket (http://KEY:SECRET@host:port/bucket)")
	}
	if prefix != "" {
		prefix += "/"
	}
	access, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if u.User != nil {
		access = u.User.Username()
		secret, _ = u.User.Password()
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(access, secret, ""),
		Secure: u.Scheme == "https",
		Region: u.Query().Get("region"),
		// A few quick retries ride over a blip; an outage must reach the
		// caller (and its health check) within seconds, not minutes.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	s := &Store{c: c, bucket: bucket, prefix: prefix, where: u.Scheme + "://" + u.Host + "/" + path}
	ok, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: %w", s.where, err)
	}
	if !ok {
		if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: u.Query().Get("region")}); err != nil {
			// Another unit may have made it meanwhile.
			if ok, err2 := c.BucketExists(ctx, bucket); err2 != nil || !ok {
				return nil, fmt.Errorf("objstore: create bucket %s: %w", s.where, err)
			}
		}
	}
	return s, nil
}

// String names the store (without credentials).
func (s *Store) String() string { return s.where }

// Put stores data under key.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	_, err := s.c.PutObject(ctx, s.bucket, s.prefix+key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true})
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return nil
}

// Get returns the blob under key, or ErrNotFound. max bounds what is read
// (0: no bound): a blob larger than max is an error, not a truncation.
func (s *Store) Get(ctx context.Context, key string, max int64) ([]byte, error) {
	o, err := s.c.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	defer o.Close()
	var r io.Reader = o
	if max > 0 {
		r = io.LimitReader(o, max+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	if max > 0 && int64(len(b)) > max {
		return nil, fmt.Errorf("objstore: get %s: larger than %d bytes", key, max)
	}
	return b, nil
}

// Has tells whether key is stored.
func (s *Store) Has(ctx context.Context, key string) (bool, error) {
	_, err := s.c.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		if err = s.wrap("stat", key, err); errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Delete removes key (no error when it is not stored).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

// Ping checks that the bucket answers (for health checks).
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.c.BucketExists(ctx, s.bucket); err != nil {
		return fmt.Errorf("objstore: %s: %w", s.where, err)
	}
	return nil
}

func (s *Store) wrap(op, key string, err error) error {
	if r := minio.ToErrorResponse(err); r.Code == minio.NoSuchKey || r.StatusCode == 404 {
		return fmt.Errorf("objstore: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("objstore: %s %s: %w", op, key, err)
}
