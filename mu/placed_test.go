package mu

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aonode/aonode/wallet"
)

func TestCUConfig(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    Config
		placed int // CUs in the placement; 0: none (one CU, direct)
		err    bool
	}{
		{"one CU", Config{CUURL: "http://a:1"}, 0, false},
		{"one CU in the list", Config{CUURLs: []string{"http://a:1"}}, 0, false},
		{"CUURL and a list", Config{CUURL: "http://a:1", CUURLs: []string{"http://b:1", "http://a:1/"}}, 2, false},
		{"discovery alone", Config{CUDiscover: true, GatewayURL: "http://gw:1"}, 0, false},
		{"discovery without a gateway", Config{CUDiscover: true}, 0, true},
		{"no CU", Config{}, 0, true},
		{"bad URL", Config{CUURLs: []string{"http://a:1", "nope"}}, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := newPlacer(c.cfg)
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error %v", err, c.err)
			}
			if err != nil {
				return
			}
			switch {
			case c.placed == 0 && !c.cfg.CUDiscover && p != nil:
				t.Fatalf("placement for one CU: %+v", p.Table())
			case c.placed > 0 && (p == nil || len(p.Table().CUs) != c.placed):
				t.Fatalf("placement %v, want %d CUs", p, c.placed)
			case c.cfg.CUDiscover && p == nil:
				t.Fatal("no placement with discovery")
			}
		})
	}
}

// cuFront is a CU's address in front of the shared scripted CU: it answers
// GET / as a CU does, and can crash (connections dropped without an answer)
// or refuse results for money (402).
type cuFront struct {
	h      http.Handler
	addr   string
	dead   atomic.Bool
	refuse bool
	asked  atomic.Int64 // /result requests seen
}

func (f *cuFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.dead.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if r.URL.Path == "/" {
		fmt.Fprintf(w, `{"address":%q,"timestamp":1}`, f.addr)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/result/") {
		f.asked.Add(1)
		if f.refuse {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusPaymentRequired)
			fmt.Fprint(w, `{"error":"insufficient balance","price":"1","balance":"0"}`)
			return
		}
	}
	f.h.ServeHTTP(w, r)
}

// TestPlacedFailover runs a ping-pong over three CUs: the two processes are
// pinned to a CU that crashes mid-way, and a third process to a CU that
// wants payment. Every round is delivered exactly once, the crashed CU is
// demoted, and the refusing CU is passed over without being demoted and
// without failing the message.
func TestPlacedFailover(t *testing.T) {
	const rounds = 10
	e := newNet(t)
	ok := &cuFront{h: e.cu, addr: "ok"}
	crash := &cuFront{h: e.cu, addr: "crash"}
	unpaid := &cuFront{h: e.cu, addr: "unpaid", refuse: true}
	var urls []string
	for _, f := range []*cuFront{ok, crash, unpaid} {
		s := httptest.NewServer(f)
		t.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	e.muW = genWallet(t, wallet.Ed25519)
	e.muDir = t.TempDir()
	e.startMU(func(c *Config) { c.CUURL, c.CUURLs = "", urls })
	p := e.mu.Placement()
	if p == nil || len(p.Table().CUs) != 3 {
		t.Fatal("no placement over three CUs")
	}
	a, b, r := e.spawn("a"), e.spawn("b"), e.spawn("r")
	for pid, u := range map[string]string{a: urls[1], b: urls[1], r: urls[2]} {
		if err := p.Pin(pid, u); err != nil {
			t.Fatal(err)
		}
	}
	peer := map[string]string{a: b, b: a}
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if m.tag("Action") != "Ping" || pid == r {
			return nil
		}
		n, _ := strconv.Atoi(m.tag("Round"))
		if n == rounds/2 {
			crash.dead.Store(true)
		}
		if n >= rounds {
			return nil
		}
		return map[string]any{"Messages": []any{outMsg(peer[pid], strconv.Itoa(n+1), tg("Action", "Ping", "Round", strconv.Itoa(n+1))...)}}
	}
	e.send(a, tg("Action", "Ping", "Round", "0")...)
	paid := e.send(r, tg("Action", "Ping", "Round", "0")...)
	eventually(t, "all rounds", func() bool { return len(e.messagesTo(a))+len(e.messagesTo(b)) == rounds+1 })
	e.idle()
	seen := map[string]int{}
	for _, pid := range []string{a, b} {
		for _, m := range e.messagesTo(pid) {
			seen[m.tag("Round")]++
		}
	}
	for i := 0; i <= rounds; i++ {
		if seen[strconv.Itoa(i)] != 1 {
			t.Fatalf("round %d delivered %d times: %v", i, seen[strconv.Itoa(i)], seen)
		}
	}
	tb := p.Table()
	for _, c := range tb.CUs {
		if c.URL == urls[1] && c.Healthy {
			t.Fatalf("the crashed CU is healthy: %+v", tb)
		}
		if c.URL == urls[2] && !c.Healthy {
			t.Fatalf("a 402 demoted the CU: %+v", tb)
		}
	}
	if tb.Failovers == 0 || tb.Demotions == 0 || unpaid.asked.Load() == 0 {
		t.Fatalf("failovers %d, demotions %d, 402s %d", tb.Failovers, tb.Demotions, unpaid.asked.Load())
	}
	rows, _, err := e.mu.Trace(e.ctx, TraceQuery{ID: paid, PageSize: 100, Page: 1})
	if err != nil {
		t.Fatal(err)
	}
	pulled := false
	for _, row := range rows {
		if row.Status != "done" {
			t.Fatalf("step of the refused process: %+v", row)
		}
		pulled = pulled || row.Kind == kindPull
	}
	if !pulled {
		t.Fatalf("no pull for the refused process: %+v", rows)
	}
	resp, err := http.Get(e.muURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "mu_placement_failovers_total") {
		t.Fatalf("metrics without placement: %s", metrics)
	}
}
