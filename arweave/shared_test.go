package arweave

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/objstore"
	"github.com/aonode/aonode/internal/pgtest"
	"github.com/aonode/aonode/internal/s3test"
)

// sharedOptions opens a fresh PostgreSQL schema and S3 bucket for a test.
func sharedOptions(t *testing.T) (Options, *s3test.Server) {
	t.Helper()
	dsn := pgtest.Schema(t, "gw_test")
	srv := s3test.Start(t)
	obj, err := objstore.Open(context.Background(), srv.URL("gateway"))
	if err != nil {
		t.Fatal(err)
	}
	return Options{Dir: t.TempDir(), Database: dsn, Objects: obj}, srv
}

// TestSharedGateway runs the gateway's route, GraphQL and pagination tests on
// the shared backend: the index on PostgreSQL, the bytes in S3.
func TestSharedGateway(t *testing.T) {
	sharedBackend = func(t *testing.T) Options { o, _ := sharedOptions(t); return o }
	defer func() { sharedBackend = nil }()
	t.Run("GraphQLQueriesAOSends", TestGraphQLQueriesAOSends)
	t.Run("Pagination", TestPagination)
	t.Run("Routes", TestRoutes)
}

// TestTwoGatewaysOneIndex runs two gateway processes' stores on one index and
// bucket: what one stores (a nested bundle too), the other serves and finds,
// and blocks cut by either form one chain.
func TestTwoGatewaysOneIndex(t *testing.T) {
	ctx := context.Background()
	o, s3 := sharedOptions(t)
	a, err := OpenWith(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenWith(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := newSigner()
	inner, err := ans104.Sign(s, []byte("inner"), ans104.Options{Tags: []ans104.Tag{{Name: "K", Value: "inner"}}})
	if err != nil {
		t.Fatal(err)
	}
	bundle := ans104.BuildBundle([]*ans104.DataItem{inner})
	outer, err := ans104.Sign(s, bundle, ans104.Options{Tags: []ans104.Tag{{Name: "Bundle-Format", Value: "binary"}, {Name: "Bundle-Version", Value: "2.0.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, outer); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Put(ctx, outer); err != nil || n {
		t.Fatalf("second put on the other gateway: new=%v %v, want an idempotent no-op", n, err)
	}
	raw, err := b.Raw(ctx, inner.ID())
	if err != nil || string(raw) != string(inner.Bytes()) {
		t.Fatalf("raw of the nested item through the other gateway: %v", err)
	}
	if _, err := b.Raw(ctx, "missing"); err != ErrNotFound {
		t.Fatalf("missing item: %v", err)
	}
	items, _, err := b.Query(ctx, Query{Tags: []TagFilter{{Name: "K", Values: []string{"inner"}}}})
	if err != nil || len(items) != 1 || items[0].BundledIn != outer.ID() {
		t.Fatalf("query through the other gateway: %v %v", items, err)
	}
	blk1, made, err := a.Mine(ctx)
	if err != nil || !made {
		t.Fatal(made, err)
	}
	d2, _ := ans104.Sign(s, []byte("second"), ans104.Options{})
	if _, err := a.Put(ctx, d2); err != nil {
		t.Fatal(err)
	}
	blk2, made, err := b.Mine(ctx) // b never saw blk1 in memory
	if err != nil || !made {
		t.Fatal(made, err)
	}
	if blk2.Height != blk1.Height+1 || blk2.Previous != blk1.ID {
		t.Fatalf("block %+v does not follow %+v", blk2, blk1)
	}
	it, err := a.Get(ctx, d2.ID())
	if err != nil || it.Block == nil || it.Block.ID != blk2.ID {
		t.Fatalf("item block: %+v %v", it, err)
	}

	// Health: the gateway answers 503 once its object store is down.
	gw := NewGateway(a, Config{})
	h := gw.Handler()
	probe := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code
	}
	if c := probe(); c != http.StatusOK {
		t.Fatalf("healthz %d, want 200", c)
	}
	s3.Kill()
	if c := probe(); c != http.StatusServiceUnavailable {
		t.Fatalf("healthz with S3 down: %d, want 503", c)
	}
	if _, err := a.Put(ctx, mustSign(t, s, "after")); err == nil {
		t.Fatal("a put with S3 down succeeded")
	}
}

func mustSign(t *testing.T, s ans104.Signer, data string) *ans104.DataItem {
	d, err := ans104.Sign(s, []byte(data), ans104.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
