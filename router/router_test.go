package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aonode/aonode/placement"
)

// upstream stands in for a CU at the edges a real CU does not produce on
// demand (a 402, a 5xx); node's end-to-end test runs the router over real CUs.
type upstream struct {
	srv    *httptest.Server
	name   string
	status atomic.Int64 // answer with this status (0: 200)
	mu     sync.Mutex
	seen   []string // method path?query body
}

func newUpstream(t *testing.T, name, price string) *upstream {
	u := &upstream{name: name}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			fmt.Fprintf(w, `{"address":%q,"pricing":true,"prices":{"message":%q}}`, name, price)
			return
		}
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-From", name)
		switch st := int(u.status.Load()); st {
		case 0:
			fmt.Fprintf(w, `{"cu":%q}`, name)
		case http.StatusPaymentRequired:
			w.Header().Set("price", "5")
			w.WriteHeader(st)
			fmt.Fprint(w, `{"error":"insufficient funds","price":"5","balance":"0"}`)
		default:
			w.WriteHeader(st)
			fmt.Fprint(w, `{"error":"boom"}`)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) last() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return ""
	}
	return u.seen[len(u.seen)-1]
}

func newRouter(t *testing.T, dir string, ups ...*upstream) (*Router, string, *placement.Placer) {
	var urls []string
	for _, u := range ups {
		urls = append(urls, u.srv.URL)
	}
	p, err := placement.New(placement.Config{URLs: urls})
	if err != nil {
		t.Fatal(err)
	}
	p.Refresh(context.Background())
	rt, err := New(Config{Placer: p, DataDir: dir, MaxBodyBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.Handler())
	t.Cleanup(srv.Close)
	return rt, srv.URL, p
}

func do(t *testing.T, method, u, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestRoutes(t *testing.T) {
	cheap, dear := newUpstream(t, "cheap", "1"), newUpstream(t, "dear", "2")
	_, base, _ := newRouter(t, t.TempDir(), cheap, dear)
	for _, c := range []struct {
		method, path, body string
		status             int
		upstream           string // what the cheap CU saw; "" for nothing
	}{
		{"GET", "/result/M?process-id=P", "", 200, "GET /result/M?process-id=P "},
		{"GET", "/results/P?sort=DESC&limit=1", "", 200, "GET /results/P?sort=DESC&limit=1 "},
		{"GET", "/state/P", "", 200, "GET /state/P "},
		{"GET", "/cron/P?from=abc", "", 200, "GET /cron/P?from=abc "},
		{"GET", "/attestation/M?process-id=P", "", 200, "GET /attestation/M?process-id=P "},
		{"GET", "/usage/P", "", 200, "GET /usage/P "},
		{"POST", "/dry-run?process-id=P", `{"Tags":[]}`, 200, `POST /dry-run?process-id=P {"Tags":[]}`},
		{"POST", "/verify", "signed request", 200, "POST /verify signed request"},
		{"GET", "/result/M", "", 400, ""},
		{"POST", "/dry-run", "{}", 400, ""},
		{"POST", "/dry-run?process-id=P", strings.Repeat("x", 2000), 413, ""},
		{"GET", "/nope", "", 404, ""},
		{"DELETE", "/state/P", "", 405, ""},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			before := cheap.last()
			code, h, body := do(t, c.method, base+c.path, c.body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, body)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("answer is not JSON: %q", body)
			}
			if c.upstream == "" {
				if cheap.last() != before {
					t.Fatalf("a refused request reached the CU: %s", cheap.last())
				}
				return
			}
			if got := cheap.last(); got != c.upstream {
				t.Fatalf("the CU saw %q, want %q", got, c.upstream)
			}
			if h.Get(CUHeader) != cheap.srv.URL || h.Get("X-From") != "cheap" || v["cu"] != "cheap" {
				t.Fatalf("answer %s from %s (%v)", body, h.Get(CUHeader), h)
			}
		})
	}
}

func TestFailover(t *testing.T) {
	a, b := newUpstream(t, "a", "1"), newUpstream(t, "b", "1")
	_, base, p := newRouter(t, t.TempDir(), a, b)
	pid := "P"
	first, _ := p.Choose(pid)
	primary, other := a, b
	if first == b.srv.URL {
		primary, other = b, a
	}
	get := func() (int, http.Header, string) { return do(t, "GET", base+"/result/M?process-id="+pid, "") }

	for _, c := range []struct {
		name     string
		primary  int // the primary's status (0: 200, -1: closed)
		other    int
		status   int
		servedBy *upstream
	}{
		{"healthy", 0, 0, 200, primary},
		{"402 tries the next", 402, 0, 200, other},
		{"every CU refuses: the 402 comes back", 402, 402, 402, nil},
		{"a 4xx is the answer", 404, 0, 404, primary},
		{"5xx demotes and fails over", 503, 0, 200, other},
		{"every CU down: 502", -1, 500, 502, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.Refresh(context.Background()) // undo the previous case's demotions
			primary.status.Store(int64(max(c.primary, 0)))
			other.status.Store(int64(c.other))
			if c.primary < 0 {
				primary.srv.Close()
			}
			code, h, body := get()
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, body)
			}
			if !json.Valid([]byte(body)) {
				t.Fatalf("not JSON: %q", body)
			}
			if c.servedBy != nil && h.Get(CUHeader) != c.servedBy.srv.URL {
				t.Fatalf("served by %s, want %s", h.Get(CUHeader), c.servedBy.srv.URL)
			}
			if c.status == 402 && (h.Get("price") != "5" || !strings.Contains(body, `"balance"`)) {
				t.Fatalf("402 without price: %v %s", h, body)
			}
		})
	}
	code, _, body := do(t, "GET", base+"/healthz", "")
	if code != 503 || !strings.Contains(body, `"ok":false`) {
		t.Fatalf("healthz with every CU down: %d %s", code, body)
	}
	code, _, body = do(t, "GET", base+"/metrics", "")
	if code != 200 || !strings.Contains(body, "router_placement_failovers_total") || !strings.Contains(body, `router_http_requests_total{route="GET /result/{message}",code="502"}`) {
		t.Fatalf("metrics: %s", body)
	}
}

func TestPinsFile(t *testing.T) {
	cheap, dear := newUpstream(t, "cheap", "1"), newUpstream(t, "dear", "9")
	dir := t.TempDir()
	pins, _ := json.Marshal(map[string]string{"PINNED": dear.srv.URL})
	if err := os.WriteFile(filepath.Join(dir, PinsFile), pins, 0o600); err != nil {
		t.Fatal(err)
	}
	_, base, _ := newRouter(t, dir, cheap, dear)
	for pid, want := range map[string]*upstream{"PINNED": dear, "FREE": cheap} {
		_, h, _ := do(t, "GET", base+"/state/"+pid, "")
		if h.Get(CUHeader) != want.srv.URL {
			t.Fatalf("%s served by %s, want %s", pid, h.Get(CUHeader), want.srv.URL)
		}
	}
	var root struct {
		Placement placement.Table  `json:"placement"`
		Prices    placement.Prices `json:"prices"`
		Pricing   bool             `json:"pricing"`
	}
	_, _, body := do(t, "GET", base+"/", "")
	if err := json.Unmarshal([]byte(body), &root); err != nil || root.Placement.Pins["PINNED"] != dear.srv.URL ||
		len(root.Placement.CUs) != 2 || root.Placement.CUs[0].URL != cheap.srv.URL || root.Prices.Message != "1" || !root.Pricing {
		t.Fatalf("GET /: %v %s", err, body)
	}
	os.WriteFile(filepath.Join(dir, PinsFile), []byte("{not json"), 0o600)
	p, _ := placement.New(placement.Config{URLs: []string{cheap.srv.URL}})
	if _, err := New(Config{Placer: p, DataDir: dir}); err == nil {
		t.Fatal("a broken pins file was accepted")
	}
}
