package su

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/wallet"
)

// ---- stores ----

// postgresURL finds a reachable PostgreSQL for tests ("" when none).
func postgresURL(t testing.TB) string {
	t.Helper()
	cands := []string{os.Getenv("AONODE_TEST_POSTGRES"), "postgres://postgres@127.0.0.1:5432/test", "postgres://root@127.0.0.1:5432/test"}
	for _, u := range cands {
		if u == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		p, err := OpenPostgresAdmin(ctx, u)
		cancel()
		if err == nil {
			p.close()
			return u
		}
	}
	if os.Getenv("AONODE_REQUIRE_POSTGRES") != "" {
		t.Fatal("PostgreSQL is required (AONODE_REQUIRE_POSTGRES) but unreachable at 127.0.0.1:5432")
	}
	return ""
}

var schemaSeq atomic.Int64

// pgSchema creates a fresh schema, dropped at the end of the test, and returns
// a URL selecting it.
func pgSchema(t testing.TB) string {
	t.Helper()
	base := postgresURL(t)
	if base == "" {
		t.Skip("PostgreSQL unreachable at 127.0.0.1:5432; set AONODE_REQUIRE_POSTGRES=1 to fail instead")
	}
	ctx := context.Background()
	admin, err := OpenPostgresAdmin(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	schema := fmt.Sprintf("su_test_%d_%d", os.Getpid(), schemaSeq.Add(1))
	if err := admin.exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
		t.Fatal(err)
	}
	if err := admin.exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		admin.close()
	})
	return WithSearchPath(base, schema)
}

// backend opens fresh stores of one kind; reopen returns another handle on
// the same data (a restart).
type backend struct {
	name string
	open func(t testing.TB) (st Store, reopen func() Store)
}

var backends = []backend{
	{"sqlite", func(t testing.TB) (Store, func() Store) {
		path := t.TempDir() + "/su.db"
		open := func() Store {
			st, err := OpenSQLite(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
		return open(), open
	}},
	{"postgres", func(t testing.TB) (Store, func() Store) {
		url := pgSchema(t)
		open := func() Store {
			st, err := OpenPostgres(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
		return open(), open
	}},
}

// forEachBackend runs f as a subtest per storage backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// ---- keys and items ----

var clientKey = ans104.NewEd25519Signer(ed25519.NewKeyFromSeed([]byte("aonode su test client key 32byte")))

var suWallet = sync.OnceValue(func() *wallet.Wallet {
	w, err := wallet.Parse([]byte(`{"kty":"OKP","crv":"Ed25519","d":"` + ans104.Base64URL([]byte("aonode su test SU wallet 32 byte")) + `"}`))
	if err != nil {
		panic(err)
	}
	return w
})

var rsaWallet = sync.OnceValue(func() *wallet.Wallet {
	w, err := wallet.Generate(wallet.Arweave)
	if err != nil {
		panic(err)
	}
	return w
})

func signItem(t testing.TB, s ans104.Signer, data string, target string, anchor []byte, tags ...ans104.Tag) *ans104.DataItem {
	t.Helper()
	opts := ans104.Options{Tags: tags, Anchor: anchor}
	if target != "" {
		id, err := ans104.DecodeID(target)
		if err != nil {
			t.Fatal(err)
		}
		opts.Target = id[:]
	}
	it, err := ans104.Sign(s, []byte(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

var itemSeq atomic.Int64

func processItem(t testing.TB, scheduler string, extra ...ans104.Tag) *ans104.DataItem {
	tags := append([]ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Process"},
		{Name: "Module", Value: strings.Repeat("M", 43)}, {Name: "Scheduler", Value: scheduler},
		{Name: "Seq", Value: strconv.FormatInt(itemSeq.Add(1), 10)}}, extra...)
	return signItem(t, clientKey, "process data", "", nil, tags...)
}

func messageItem(t testing.TB, pid string, extra ...ans104.Tag) *ans104.DataItem {
	tags := append([]ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Message"},
		{Name: "Action", Value: "Test"}, {Name: "Seq", Value: strconv.FormatInt(itemSeq.Add(1), 10)}}, extra...)
	return signItem(t, clientKey, "hello", pid, nil, tags...)
}

// ---- a fake permanent store ----

type fakeGateway struct {
	*httptest.Server
	height     atomic.Int64
	failUpload atomic.Int64 // fail this many uploads first
	mu         sync.Mutex
	items      map[string][]byte
	status     map[string]int64 // confirmations per tx id
	uploads    int
}

func newFakeGateway(t testing.TB) *fakeGateway {
	g := &fakeGateway{items: make(map[string][]byte), status: make(map[string]int64)}
	g.height.Store(1736676)
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/info":
		json.NewEncoder(w).Encode(map[string]any{"network": "aonode.test", "version": 5, "release": 53, "height": g.height.Load(),
			"current": strings.Repeat("A", 64), "blocks": g.height.Load() + 1, "peers": 0, "queue_length": 0, "node_state_latency": 0})
	case r.Method == http.MethodPost && r.URL.Path == "/tx/arweave":
		if g.failUpload.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		it, err := ans104.Parse(b)
		if err != nil || it.Verify() != nil {
			http.Error(w, "bad item", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.items[it.ID()] = b
		g.uploads++
		g.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"id": it.ID(), "timestamp": time.Now().UnixMilli()})
	case r.Method == http.MethodHead:
		g.mu.Lock()
		_, ok := g.items[strings.TrimPrefix(r.URL.Path, "/")]
		g.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
		}
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/tx/") && strings.HasSuffix(r.URL.Path, "/status"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/tx/"), "/status")
		g.mu.Lock()
		n, ok := g.status[id]
		g.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"block_height": 100, "block_indep_hash": "x", "number_of_confirmations": n})
	default:
		http.NotFound(w, r)
	}
}

func (g *fakeGateway) item(id string) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.items[id]
}

func (g *fakeGateway) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.items)
}
