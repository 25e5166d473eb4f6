package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aonode/aonode/internal/objstore"
	"github.com/aonode/aonode/internal/s3test"
)

func TestRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, url string }{
		{"bucket", srv.URL("aonode-test")},
		{"prefix", srv.URL("aonode-test/cu/checkpoints")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := objstore.Open(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, "nope", 0); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("get missing: %v, want ErrNotFound", err)
			}
			if ok, err := st.Has(ctx, "nope"); err != nil || ok {
				t.Fatalf("has missing: %v %v", ok, err)
			}
			data := bytes.Repeat([]byte("aonode"), 100000)
			if err := st.Put(ctx, "s1-abc", data); err != nil {
				t.Fatal(err)
			}
			got, err := st.Get(ctx, "s1-abc", 0)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get: %d bytes, %v", len(got), err)
			}
			if _, err := st.Get(ctx, "s1-abc", 1000); err == nil {
				t.Fatal("get over the bound succeeded")
			}
			if ok, err := st.Has(ctx, "s1-abc"); err != nil || !ok {
				t.Fatalf("has: %v %v", ok, err)
			}
			if err := st.Delete(ctx, "s1-abc"); err != nil {
				t.Fatal(err)
			}
			if ok, _ := st.Has(ctx, "s1-abc"); ok {
				t.Fatal("still there after delete")
			}
			if err := st.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDown(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	st, err := objstore.Open(ctx, srv.URL("down"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if err := st.Ping(ctx); err == nil {
		t.Fatal("ping of a dead server succeeded")
	}
	if _, err := st.Get(ctx, "x", 0); err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("get from a dead server: %v, want a non-NotFound error", err)
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"s3://x/y", "http://127.0.0.1:1/", "::"} {
		if _, err := objstore.Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}
