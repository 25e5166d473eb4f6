package mu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/arweave"
	"github.com/aonode/aonode/su"
	"github.com/aonode/aonode/wallet"
)

// suMsg is an SU message JSON (units.md §3.3), as the fake CU and checks read it.
type suMsg struct {
	Message *struct {
		ID     string                   `json:"id"`
		Owner  struct{ Address string } `json:"owner"`
		Data   *string                  `json:"data"`
		Tags   []Tag                    `json:"tags"`
		Anchor *string                  `json:"anchor"`
		Target *string                  `json:"target"`
	} `json:"message"`
	Assignment struct {
		ID   string `json:"id"`
		Tags []Tag  `json:"tags"`
	} `json:"assignment"`
}

func (m suMsg) tag(name string) string {
	if m.Message == nil {
		return ""
	}
	v, _ := tagValue(m.Message.Tags, name)
	return v
}

// script decides a process's outputs for a scheduled message, as a CU would.
type script func(pid string, m suMsg) map[string]any

// fakeCU answers /result by reading the message from the SU and running the
// script; results are cached per message like the real CU's. /cron serves the
// edges added with addCron.
type fakeCU struct {
	t        testing.TB
	suURL    string
	mu       sync.Mutex
	script   script
	cache    map[string][]byte
	calls    map[string]int
	fail     int           // fail this many /result calls with 500 first
	hold     chan struct{} // when set, /result waits until it is closed
	held     int           // /result calls waiting on hold
	crons    map[string][]cronEdge
	polls    map[string]int  // /cron and /results calls per process
	cronFail map[string]bool // answer /cron with 500 for these processes
}

type cronEdge struct {
	cursor string
	node   map[string]any
}

func (f *fakeCU) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) == 2 && segs[0] == "result":
		f.result(w, r, segs[1], r.URL.Query().Get("process-id"))
	case len(segs) == 2 && (segs[0] == "cron" || segs[0] == "results"):
		f.mu.Lock()
		f.polls[segs[1]]++
		fail := f.cronFail[segs[1]]
		f.mu.Unlock()
		switch {
		case fail:
			http.Error(w, `{"error":"injected cron failure"}`, 500)
		case segs[0] == "cron":
			f.cron(w, r, segs[1])
		default:
			io.WriteString(w, `{"pageInfo":{"hasNextPage":false},"edges":[]}`)
		}
	default:
		http.Error(w, `{"error":"not found"}`, 404)
	}
}

func (f *fakeCU) result(w http.ResponseWriter, r *http.Request, id, pid string) {
	f.mu.Lock()
	f.calls[id]++
	if hold := f.hold; hold != nil {
		f.held++
		f.mu.Unlock()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
		f.mu.Lock()
		f.held--
	}
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		http.Error(w, `{"error":"injected failure"}`, 500)
		return
	}
	if b, ok := f.cache[id]; ok {
		f.mu.Unlock()
		w.Write(b)
		return
	}
	sc := f.script
	f.mu.Unlock()
	var m suMsg
	if id != pid {
		resp, err := http.Get(f.suURL + "/" + id + "?process-id=" + pid)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			http.Error(w, string(b), 404)
			return
		}
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
	}
	out := map[string]any{"Messages": []any{}, "Spawns": []any{}, "Assignments": []any{}, "Output": ""}
	if sc != nil {
		for k, v := range sc(pid, m) {
			out[k] = v
		}
	}
	b, _ := json.Marshal(out)
	f.mu.Lock()
	f.cache[id] = b
	f.mu.Unlock()
	w.Write(b)
}

func (f *fakeCU) addCron(pid string, node map[string]any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.crons[pid])
	c, _ := json.Marshal(map[string]any{"timestamp": 1700000000000 + int64(n)*1000, "ordinate": "1", "cron": "0-1-second", "sort": "ASC"})
	cur := base64.StdEncoding.EncodeToString(c)
	f.crons[pid] = append(f.crons[pid], cronEdge{cur, node})
	return cur
}

func (f *fakeCU) cron(w http.ResponseWriter, r *http.Request, pid string) {
	from := r.URL.Query().Get("from")
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 500
	}
	f.mu.Lock()
	all := f.crons[pid]
	start := 0
	if from != "" {
		for i, e := range all {
			if e.cursor == from {
				start = i + 1
			}
		}
	}
	var edges []map[string]any
	for i := start; i < len(all) && len(edges) < limit; i++ {
		edges = append(edges, map[string]any{"node": all[i].node, "cursor": all[i].cursor})
	}
	more := start+len(edges) < len(all)
	f.mu.Unlock()
	if edges == nil {
		edges = []map[string]any{}
	}
	b, _ := json.Marshal(map[string]any{"pageInfo": map[string]bool{"hasNextPage": more}, "edges": edges})
	w.Write(b)
}

// env is a loopback AO network: gateway, real SU, fake CU, and an MU.
type env struct {
	t       testing.TB
	ctx     context.Context
	gwURL   string
	suURL   string
	suAddr  string
	su      *su.Server
	suFlaky *flaky
	cu      *fakeCU
	cuURL   string
	mu      *Server
	muURL   string
	muDir   string
	muW     *wallet.Wallet
	user    *wallet.Wallet
	module  string
}

// flaky passes requests to the SU and can drop the answer of the next n
// writes after the SU has handled them (the MU sees an error for a write
// that happened).
type flaky struct {
	h     http.Handler
	mu    sync.Mutex
	drop  int
	posts int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		f.mu.Lock()
		f.posts++
		d := f.drop > 0
		if d {
			f.drop--
		}
		f.mu.Unlock()
		if d {
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, r)
			http.Error(w, `{"error":"injected: answer lost"}`, http.StatusBadGateway)
			return
		}
	}
	f.h.ServeHTTP(w, r)
}

var (
	walletOnce sync.Once
	rsaWallet  *wallet.Wallet
)

// testRSAWallet is one RSA-4096 key per test binary (generating is slow).
func testRSAWallet(t testing.TB) *wallet.Wallet {
	walletOnce.Do(func() {
		w, err := wallet.Generate(wallet.Arweave)
		if err != nil {
			t.Fatal(err)
		}
		rsaWallet = w
	})
	return rsaWallet
}

func genWallet(t testing.TB, kind string) *wallet.Wallet {
	if kind == wallet.Arweave {
		return testRSAWallet(t)
	}
	w, err := wallet.Generate(kind)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// newNet starts gateway, SU and fake CU (no MU).
func newNet(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, ctx: ctx}
	st, err := arweave.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(arweave.NewGateway(st, arweave.Config{}).Handler())
	e.gwURL = gw.URL
	e.suFlaky = &flaky{}
	suHTTP := httptest.NewServer(e.suFlaky)
	e.suURL = suHTTP.URL
	suW := genWallet(t, wallet.Ed25519)
	s, err := su.New(ctx, su.Config{Signer: suW, DataDir: t.TempDir(), Chain: su.NewHTTPChain(gw.URL), URL: suHTTP.URL, HeightInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.su, e.suAddr = s, s.Address()
	e.suFlaky.h = s.Handler()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	e.cu = &fakeCU{t: t, suURL: suHTTP.URL, cache: map[string][]byte{}, calls: map[string]int{}, crons: map[string][]cronEdge{},
		polls: map[string]int{}, cronFail: map[string]bool{}}
	cu := httptest.NewServer(e.cu)
	e.cuURL = cu.URL
	e.user = genWallet(t, wallet.Ed25519)
	e.module = randomID()
	t.Cleanup(func() {
		cu.Close()
		suHTTP.Close()
		s.Close()
		gw.Close()
		st.Close()
	})
	return e
}

// newEnv starts the network and an in-process MU signing with kind.
func newEnv(t testing.TB, kind string, mod func(*Config)) *env {
	e := newNet(t)
	e.muW = genWallet(t, kind)
	e.muDir = t.TempDir()
	e.startMU(mod)
	return e
}

func (e *env) startMU(mod func(*Config)) {
	t := e.t
	cfg := Config{Signer: e.muW, DataDir: e.muDir, GatewayURL: e.gwURL, CUURL: e.cuURL, RetryDelay: 20 * time.Millisecond,
		MaxRetryDelay: 200 * time.Millisecond, CronInterval: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	e.mu, e.muURL = m, srv.URL
	t.Cleanup(func() { srv.Close(); m.Close() })
}

func randomID() string {
	var b [32]byte
	rand.Read(b[:])
	return ans104.Base64URL(b[:])
}

func (e *env) sign(target string, data string, tags ...Tag) *ans104.DataItem {
	e.t.Helper()
	opts := ans104.Options{Tags: tags}
	if target != "" {
		id, err := ans104.DecodeID(target)
		if err != nil {
			e.t.Fatal(err)
		}
		opts.Target = id[:]
	}
	d, err := ans104.Sign(e.user, []byte(data), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func tg(kv ...string) []Tag {
	var out []Tag
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Tag{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func (e *env) post(path string, body []byte) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.Post(e.muURL+path, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

// spawn creates a process through the MU (POST / with a Process item).
func (e *env) spawn(name string) string {
	e.t.Helper()
	d := e.sign("", "1984", tg("Data-Protocol", "ao", "Variant", "ao.TN.1", "Type", "Process", "Module", e.module, "Scheduler", e.suAddr, "Name", name)...)
	code, m := e.post("/", d.Bytes())
	if code != 202 || m["id"] != d.ID() {
		e.t.Fatalf("spawn %s: %d %v", name, code, m)
	}
	return d.ID()
}

// send posts a user message through the MU.
func (e *env) send(pid string, tags ...Tag) string {
	e.t.Helper()
	all := append(tg("Data-Protocol", "ao", "Variant", "ao.TN.1", "Type", "Message"), tags...)
	d := e.sign(pid, "hello", all...)
	code, m := e.post("/", d.Bytes())
	if code != 202 || m["id"] != d.ID() {
		e.t.Fatalf("send: %d %v", code, m)
	}
	return d.ID()
}

// schedule reads a process's whole schedule from the SU.
func (e *env) schedule(pid string) []suMsg {
	e.t.Helper()
	var out []suMsg
	from := ""
	for {
		u := e.suURL + "/" + pid + "?process-id=" + pid + "&limit=1000"
		if from != "" {
			u += "&from=" + from
		}
		resp, err := http.Get(u)
		if err != nil {
			e.t.Fatal(err)
		}
		var page struct {
			PageInfo struct {
				HasNextPage bool `json:"has_next_page"`
			} `json:"page_info"`
			Edges []struct {
				Node   suMsg  `json:"node"`
				Cursor string `json:"cursor"`
			} `json:"edges"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &page); err != nil {
			e.t.Fatalf("schedule %s: %v: %s", pid, err, b)
		}
		for _, ed := range page.Edges {
			out = append(out, ed.Node)
			from = ed.Cursor
		}
		if !page.PageInfo.HasNextPage || len(page.Edges) == 0 {
			return out
		}
	}
}

// messagesTo is a process's scheduled messages (not its process item or pure assignments).
func (e *env) messagesTo(pid string) []suMsg {
	var out []suMsg
	for _, m := range e.schedule(pid) {
		if m.Message != nil && m.Message.ID != pid {
			out = append(out, m)
		}
	}
	return out
}

// eventually polls cond until it holds (generous timeout; nothing is timed).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) idle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 90*time.Second)
	defer cancel()
	if err := e.mu.Idle(ctx); err != nil {
		e.t.Fatalf("MU never idle: %v", err)
	}
}

func outMsg(target, ref string, tags ...Tag) map[string]any {
	all := append(tg("Data-Protocol", "ao", "Variant", "ao.TN.1", "Type", "Message", "Reference", ref), tags...)
	return map[string]any{"Target": target, "Anchor": strings.Repeat("0", 32-len(ref)) + ref, "Data": "data-" + ref, "Tags": all}
}

func tagsEqual(t testing.TB, what string, got, want []Tag) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: tags\n got %v\nwant %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: tag %d\n got %v\nwant %v", what, i, got, want)
		}
	}
}
