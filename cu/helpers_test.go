package cu

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/arweave"
	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/su"
	"github.com/aonode/aonode/wallet"
)

var clientKey = ans104.NewEd25519Signer(ed25519.NewKeyFromSeed([]byte("aonode cu test client key 32byte")))

var testWallet = sync.OnceValue(func() *wallet.Wallet {
	w, err := wallet.Parse([]byte(`{"kty":"OKP","crv":"Ed25519","d":"` + ans104.Base64URL([]byte("aonode cu test SU wallet 32 byte")) + `"}`))
	if err != nil {
		panic(err)
	}
	return w
})

var seq atomic.Int64

// network is a gateway and an SU on loopback, with aos published as a module.
type network struct {
	t        testing.TB
	store    *arweave.Store
	gwURL    string
	su       *su.Server
	suURL    string
	moduleID string
}

func newNetwork(t testing.TB, moduleTags ...ans104.Tag) *network {
	t.Helper()
	return newNetworkClock(t, nil, moduleTags...)
}

// newNetworkClock is newNetwork with the SU's clock (nil: the wall clock).
func newNetworkClock(t testing.TB, now func() int64, moduleTags ...ans104.Tag) *network {
	t.Helper()
	ctx := context.Background()
	st, err := arweave.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gw := arweave.NewGateway(st, arweave.Config{})
	gwSrv := httptest.NewServer(gw.Handler())
	var suH http.Handler
	suSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { suH.ServeHTTP(w, r) }))
	s, err := su.New(ctx, su.Config{Signer: testWallet(), DataDir: t.TempDir(), Chain: su.NewHTTPChain(gwSrv.URL), URL: suSrv.URL, HeightInterval: 50 * time.Millisecond, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	suH = s.Handler()
	t.Cleanup(func() { suSrv.Close(); s.Close(); gwSrv.Close(); st.Close() })
	n := &network{t: t, store: st, gwURL: gwSrv.URL, su: s, suURL: suSrv.URL}
	bin := interop.WaoModule(t, "aos2_0_4_32.wasm")
	if len(moduleTags) == 0 {
		moduleTags = []ans104.Tag{{Name: "Module-Format", Value: wasm.FormatEmscripten4}, {Name: "Input-Encoding", Value: "JSON-1"},
			{Name: "Output-Encoding", Value: "JSON-1"}, {Name: "Memory-Limit", Value: "1-gb"}, {Name: "Compute-Limit", Value: "9000000000000"}}
	}
	tags := append([]ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Module"},
		{Name: "Content-Type", Value: "application/wasm"}}, moduleTags...)
	it, err := ans104.Sign(clientKey, bin, ans104.Options{Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	it, _ = ans104.Parse(it.Bytes())
	if _, err := st.Put(ctx, it); err != nil {
		t.Fatal(err)
	}
	n.moduleID = it.ID()
	return n
}

func (n *network) post(item *ans104.DataItem) string {
	n.t.Helper()
	resp, err := http.Post(n.suURL+"/", "application/octet-stream", bytes.NewReader(item.Bytes()))
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		n.t.Fatalf("SU POST: %d %s", resp.StatusCode, b)
	}
	return item.ID()
}

// spawn schedules a new aos process.
func (n *network) spawn(extra ...ans104.Tag) string {
	tags := append([]ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Process"},
		{Name: "Module", Value: n.moduleID}, {Name: "Scheduler", Value: testWallet().Address()},
		{Name: "Seq", Value: strconv.FormatInt(seq.Add(1), 10)}}, extra...)
	it, err := ans104.Sign(clientKey, []byte("1984"), ans104.Options{Tags: tags})
	if err != nil {
		n.t.Fatal(err)
	}
	return n.post(it)
}

// send schedules a message to pid.
func (n *network) send(pid, data string, extra ...ans104.Tag) string {
	id, _ := ans104.DecodeID(pid)
	tags := append([]ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Message"},
		{Name: "Seq", Value: strconv.FormatInt(seq.Add(1), 10)}}, extra...)
	it, err := ans104.Sign(clientKey, []byte(data), ans104.Options{Target: id[:], Tags: tags})
	if err != nil {
		n.t.Fatal(err)
	}
	return n.post(it)
}

func (n *network) eval(pid, code string) string {
	return n.send(pid, code, ans104.Tag{Name: "Action", Value: "Eval"})
}

// newCU starts a CU over n (fixed SU URL unless locate).
func (n *network) newCU(cfg Config, locate bool) (*Server, string) {
	n.t.Helper()
	gw := NewHTTPGateway(n.gwURL)
	fixed := n.suURL
	if locate {
		fixed = ""
	}
	cfg.Scheduler = NewHTTPScheduler(fixed, gw)
	cfg.Gateway = gw
	if cfg.DataDir == "" {
		cfg.DataDir = n.t.TempDir()
	}
	if sharedBackend != nil && cfg.Database == "" {
		// Each data directory gets its own schema (as its own SQLite file).
		sh := sharedBackend(n.t, cfg.DataDir)
		cfg.Database, cfg.Checkpoints = sh.Database, sh.Checkpoints
	}
	cfg.CacheDir = filepath.Join(interop.CacheDir(n.t), "wazero")
	s, err := New(context.Background(), cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	n.t.Cleanup(func() { srv.Close(); s.Close() })
	return s, srv.URL
}

func getJSON(t testing.TB, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %d %s: %v", url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type resultJSON struct {
	Messages []struct {
		Target string       `json:"Target"`
		Data   string       `json:"Data"`
		Anchor string       `json:"Anchor"`
		Tags   []su.TagJSON `json:"Tags"`
	} `json:"Messages"`
	Spawns      []json.RawMessage `json:"Spawns"`
	Assignments []json.RawMessage `json:"Assignments"`
	Output      json.RawMessage   `json:"Output"`
	Error       json.RawMessage   `json:"Error"`
	GasUsed     *int64            `json:"GasUsed"`
}

func (r resultJSON) data() string {
	var o struct {
		Data json.RawMessage `json:"data"`
	}
	json.Unmarshal(r.Output, &o)
	var s string
	if json.Unmarshal(o.Data, &s) == nil {
		return s
	}
	return string(o.Data)
}

func result(t testing.TB, cuURL, pid, msg string) resultJSON {
	t.Helper()
	var r resultJSON
	if code := getJSON(t, fmt.Sprintf("%s/result/%s?process-id=%s", cuURL, msg, pid), &r); code != 200 {
		t.Fatalf("result %s: status %d (%s)", msg, code, r.Error)
	}
	return r
}

func stateHash(t testing.TB, cuURL, pid string) string {
	t.Helper()
	resp, err := http.Get(cuURL + "/state/" + pid)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("state: %d %s", resp.StatusCode, b)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8]) + "@" + resp.Header.Get("Last-Ordinate")
}
