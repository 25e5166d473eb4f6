package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseInfo(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     Info
		err      bool
	}{
		{"reference CU", `{"address":"abc","timestamp":1700000000000}`, Info{Address: "abc", Timestamp: 1700000000000, Prices: Prices{Message: "0", Gigafuel: "0", Verification: "0", DryRun: "0"}}, false},
		{"priced", `{"address":"a","timestamp":1,"pricing":true,"prices":{"token":"T","message":"0012","gigafuel":"3","verification":"4","dryRun":"5"}}`,
			Info{Address: "a", Timestamp: 1, Pricing: true, Prices: Prices{Token: "T", Message: "12", Gigafuel: "3", Verification: "4", DryRun: "5"}}, false},
		{"pricing off means free", `{"address":"a","pricing":false,"prices":{"message":"9"}}`, Info{Address: "a", Prices: Prices{Message: "0", Gigafuel: "0", Verification: "0", DryRun: "0"}}, false},
		{"absent prices", `{"address":"a","pricing":true}`, Info{Address: "a", Pricing: true, Prices: Prices{Message: "0", Gigafuel: "0", Verification: "0", DryRun: "0"}}, false},
		{"negative price", `{"address":"a","pricing":true,"prices":{"message":"-1"}}`, Info{}, true},
		{"fraction", `{"address":"a","pricing":true,"prices":{"message":"1.5"}}`, Info{}, true},
		{"huge price", `{"address":"a","pricing":true,"prices":{"message":"` + strings.Repeat("9", 79) + `"}}`, Info{}, true},
		{"number not string", `{"address":"a","pricing":true,"prices":{"message":5}}`, Info{}, true},
		{"not JSON", `<html>`, Info{}, true},
		{"bad timestamp", `{"address":"a","timestamp":"x"}`, Info{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseInfo([]byte(c.in))
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if err == nil && got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	base := []Tag{{"Data-Protocol", "ao"}, {"Variant", "ao.TN.1"}, {"Type", "Compute-Price"}, {"Url", "http://cu.example:4004/"},
		{"Price-Message", "7"}, {"Price-Gigafuel", "1"}, {"Price-Verification", "100"}, {"Price-Dry-Run", "2"}, {"Token", "LEDGER"}}
	with := func(extra ...Tag) []Tag { return append(append([]Tag(nil), base...), extra...) }
	for _, c := range []struct {
		name  string
		tags  []Tag
		block time.Time
		check func(Record) error
		err   bool
	}{
		{"defaults", base, time.Time{}, func(r Record) error {
			if r.URL != "http://cu.example:4004" || r.Prices.Message != "7" || r.Prices.DryRun != "2" || r.Prices.Token != "LEDGER" ||
				r.TTL != DefaultRecordTTL || !r.Time.Equal(now) {
				return fmt.Errorf("%+v", r)
			}
			return nil
		}, false},
		{"block time and TTL", with(Tag{"Time-To-Live", "1000"}), now.Add(-2 * time.Second), func(r Record) error {
			if !r.Expired(now) || r.TTL != time.Second {
				return fmt.Errorf("%+v should be expired", r)
			}
			return nil
		}, false},
		{"timestamp tag wins over block", with(Tag{"Timestamp", "1700000000500"}), now.Add(-time.Hour), func(r Record) error {
			if r.Time.UnixMilli() != 1700000000500 {
				return fmt.Errorf("time %v", r.Time)
			}
			return nil
		}, false},
		{"free CU", []Tag{{"Type", "Compute-Price"}, {"url", "https://x"}}, time.Time{}, func(r Record) error {
			if r.Prices.Message != "0" || r.Prices.Token != "" {
				return fmt.Errorf("%+v", r)
			}
			return nil
		}, false},
		{"wrong type", []Tag{{"Type", "Scheduler-Location"}, {"Url", "http://x"}}, time.Time{}, nil, true},
		{"no url", []Tag{{"Type", "Compute-Price"}}, time.Time{}, nil, true},
		{"ftp url", []Tag{{"Type", "Compute-Price"}, {"Url", "ftp://x"}}, time.Time{}, nil, true},
		{"bad price", with(Tag{"Price-Message", "x"})[1:], time.Time{}, nil, false}, // first value wins: 7
		{"bad ttl", with(Tag{"Time-To-Live", "-5"}), time.Time{}, nil, true},
		{"bad timestamp", with(Tag{"Timestamp", "soon"}), time.Time{}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRecord("OWNER", c.tags, c.block, now)
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if err == nil && c.check != nil {
				if e := c.check(r); e != nil {
					t.Fatal(e)
				}
			}
		})
	}
}

func TestParseURLs(t *testing.T) {
	got, err := ParseURLs(" http://a:1/, http://b:2 ,,http://a:1")
	if err != nil || strings.Join(got, " ") != "http://a:1 http://b:2" {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"a:1", "http://", "http://a?x=1", "mailto:x"} {
		if _, err := ParseURLs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// fakeCU serves a CU's GET / with a settable price and health: the remote end
// of a probe, for the placement unit's own tests (the end-to-end tests in
// node/ use real CUs).
type fakeCU struct {
	srv     *httptest.Server
	price   atomic.Value // string
	down    atomic.Bool
	drained atomic.Bool // GET /healthz answers 503
	addr    string
	hits    atomic.Int64
}

func newFakeCU(t *testing.T, addr, price string) *fakeCU {
	f := &fakeCU{addr: addr}
	f.price.Store(price)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/healthz" {
			if f.drained.Load() {
				http.Error(w, "draining", http.StatusServiceUnavailable)
			}
			return
		}
		if r.URL.Path != "/" {
			f.hits.Add(1)
			w.Write([]byte(`{"ok":true}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"address": f.addr, "timestamp": time.Now().UnixMilli(), "pricing": true,
			"prices": map[string]string{"message": f.price.Load().(string)}})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func pids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("process-%06d-%x", i, i*7919)
	}
	return out
}

func TestCheapestHealthyAndSpread(t *testing.T) {
	ctx := context.Background()
	dear := newFakeCU(t, "dear", "5")
	a := newFakeCU(t, "a", "2")
	b := newFakeCU(t, "b", "2")
	p, err := New(Config{URLs: []string{dear.srv.URL, a.srv.URL, b.srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	p.Refresh(ctx)
	count := map[string]int{}
	for _, pid := range pids(2000) {
		u, err := p.Choose(pid)
		if err != nil {
			t.Fatal(err)
		}
		count[u]++
		if c := p.Candidates(pid); c[0] != u || c[2] != dear.srv.URL || len(c) != 3 {
			t.Fatalf("candidates %v, choice %s", c, u)
		}
	}
	if count[dear.srv.URL] != 0 {
		t.Fatalf("the dear CU got %d processes", count[dear.srv.URL])
	}
	for _, u := range []string{a.srv.URL, b.srv.URL} {
		if count[u] < 800 || count[u] > 1200 {
			t.Fatalf("uneven spread over equal CUs: %v", count)
		}
	}
	// The cheap CUs go down: the dear one takes everything.
	a.down.Store(true)
	b.down.Store(true)
	p.Refresh(ctx)
	if u, _ := p.Choose("x"); u != dear.srv.URL {
		t.Fatalf("with the cheap CUs down got %s", u)
	}
	// One gets cheaper than the rest: it takes everything.
	a.down.Store(false)
	b.down.Store(false)
	b.price.Store("1")
	p.Refresh(ctx)
	for _, pid := range pids(50) {
		if u, _ := p.Choose(pid); u != b.srv.URL {
			t.Fatalf("%s went to %s, not the cheapest", pid, u)
		}
	}
}

// TestDrainedCUTakesNothing: a CU whose /healthz answers 503 (drained)
// gets no processes, though its GET / still answers.
func TestDrainedCUTakesNothing(t *testing.T) {
	ctx := context.Background()
	cheap := newFakeCU(t, "cheap", "1")
	other := newFakeCU(t, "other", "3")
	p, err := New(Config{URLs: []string{cheap.srv.URL, other.srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	p.Refresh(ctx)
	if u, _ := p.Choose("x"); u != cheap.srv.URL {
		t.Fatalf("before the drain: %s", u)
	}
	cheap.drained.Store(true)
	p.Refresh(ctx)
	if u, _ := p.Choose("x"); u != other.srv.URL {
		t.Fatalf("a drained CU was chosen: %s", u)
	}
}

// TestRendezvous checks the two properties that make the choice sticky under
// change: a CU joining takes about its fair share and moves nothing between
// the others; a CU leaving moves only its own processes.
func TestRendezvous(t *testing.T) {
	// Real (answering) CUs, so that the background probes agree they are up.
	var urls []string
	for i := range 4 {
		urls = append(urls, newFakeCU(t, fmt.Sprint("cu-", i), "0").srv.URL)
	}
	p, err := New(Config{URLs: urls[:3]})
	if err != nil {
		t.Fatal(err)
	}
	p.Refresh(context.Background())
	ps := pids(3000)
	before := map[string]string{}
	for _, pid := range ps {
		before[pid], _ = p.Choose(pid)
	}
	if err := p.Add(urls[3]); err != nil {
		t.Fatal(err)
	}
	p.Refresh(context.Background())
	moved := 0
	for _, pid := range ps {
		u, _ := p.Choose(pid)
		if u != before[pid] {
			if u != urls[3] {
				t.Fatalf("%s moved from %s to %s, not to the new CU", pid, before[pid], u)
			}
			moved++
		}
	}
	if moved < 600 || moved > 900 { // a fair share is 750 (binomial, sd 24)
		t.Fatalf("%d of 3000 processes moved to the 4th CU", moved)
	}
	p.Remove(urls[1])
	p.Remove(urls[3])
	for _, pid := range ps {
		u, _ := p.Choose(pid)
		if before[pid] != urls[1] && u != before[pid] {
			t.Fatalf("%s moved from %s to %s though its CU stayed", pid, before[pid], u)
		}
	}
}

func TestPins(t *testing.T) {
	ctx := context.Background()
	cheap := newFakeCU(t, "cheap", "1")
	dear := newFakeCU(t, "dear", "9")
	p, _ := New(Config{URLs: []string{cheap.srv.URL, dear.srv.URL}})
	p.Refresh(ctx)
	if err := p.Pin("P", dear.srv.URL); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		dearDown bool
		pin      string
		want     string
	}{
		{"pin overrides price", false, dear.srv.URL, dear.srv.URL},
		{"pinned CU down: fail over", true, dear.srv.URL, cheap.srv.URL},
		{"pin removed", false, "", cheap.srv.URL},
		{"pin to an unknown CU is unused", false, "http://elsewhere:1", cheap.srv.URL},
	} {
		t.Run(c.name, func(t *testing.T) {
			dear.down.Store(c.dearDown)
			p.Refresh(ctx)
			p.Pin("P", c.pin)
			if u, _ := p.Choose("P"); u != c.want {
				t.Fatalf("got %s, want %s", u, c.want)
			}
			if cs := p.Candidates("P"); cs[0] != c.want || len(cs) != 2 {
				t.Fatalf("candidates %v", cs)
			}
		})
	}
	if _, err := New(Config{URLs: []string{"nope"}}); err == nil {
		t.Fatal("a bad URL was accepted")
	}
	if err := p.Pin("P", "nope"); err == nil {
		t.Fatal("a bad pin was accepted")
	}
}

// op is how MU, SDK and router call a CU through Do.
func op(path string) func(ctx context.Context, u string) (Outcome, error) {
	return func(ctx context.Context, u string) (Outcome, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return Unwell, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return Classify(resp.StatusCode), fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
		}
		return Answered, nil
	}
}

func TestDoFailoverAndRecovery(t *testing.T) {
	ctx := context.Background()
	a := newFakeCU(t, "a", "1")
	b := newFakeCU(t, "b", "1")
	p, _ := New(Config{URLs: []string{a.srv.URL, b.srv.URL}, MinBackoff: time.Millisecond})
	p.Refresh(ctx)
	// A process whose first choice is a.
	var pid string
	for _, x := range pids(100) {
		if u, _ := p.Choose(x); u == a.srv.URL {
			pid = x
			break
		}
	}
	u, err := p.Do(ctx, pid, op("/result/1"))
	if err != nil || u != a.srv.URL {
		t.Fatalf("served by %s: %v", u, err)
	}
	a.down.Store(true) // a 5xx: demoted at once, b answers
	u, err = p.Do(ctx, pid, op("/result/2"))
	if err != nil || u != b.srv.URL {
		t.Fatalf("after a failed: served by %s: %v", u, err)
	}
	tb := p.Table()
	if tb.Failovers != 1 || tb.Demotions != 1 || tb.CUs[0].URL != b.srv.URL || tb.CUs[1].Healthy {
		t.Fatalf("table %+v", tb)
	}
	// Sticky while a is down: straight to b, no more failovers.
	if u, _ := p.Do(ctx, pid, op("/result/3")); u != b.srv.URL || p.Table().Failovers != 1 {
		t.Fatalf("served by %s, failovers %d", u, p.Table().Failovers)
	}
	// a answers again: a probe brings it back and pid returns to it.
	a.down.Store(false)
	p.Refresh(ctx)
	if u, _ := p.Do(ctx, pid, op("/result/4")); u != a.srv.URL {
		t.Fatalf("after recovery served by %s", u)
	}
	// A closed CU (connection refused) fails over the same way.
	a.srv.Close()
	if u, err := p.Do(ctx, pid, op("/result/5")); u != b.srv.URL || err != nil {
		t.Fatalf("after close served by %s: %v", u, err)
	}
	// Everyone down: the last error comes back, nothing is invented.
	b.srv.Close()
	if _, err := p.Do(ctx, pid, op("/result/6")); err == nil {
		t.Fatal("no error with every CU down")
	}
}

func TestDo402TriesNextWithoutDemotion(t *testing.T) {
	ctx := context.Background()
	cheap := newFakeCU(t, "cheap", "1")
	dear := newFakeCU(t, "dear", "2")
	p, _ := New(Config{URLs: []string{cheap.srv.URL, dear.srv.URL}})
	p.Refresh(ctx)
	unpaid := func(ctx context.Context, u string) (Outcome, error) {
		if u == cheap.srv.URL {
			return Classify(http.StatusPaymentRequired), errors.New("402")
		}
		return Answered, nil
	}
	if u, err := p.Do(ctx, "P", unpaid); u != dear.srv.URL || err != nil {
		t.Fatalf("served by %s: %v", u, err)
	}
	if u, _ := p.Choose("P"); u != cheap.srv.URL || p.Table().Demotions != 0 {
		t.Fatalf("a 402 demoted the CU: choice %s, table %+v", u, p.Table())
	}
	// Every CU refuses: the 402 comes back (the caller retries later).
	all := func(ctx context.Context, u string) (Outcome, error) { return NotNow, errors.New("402 from " + u) }
	if _, err := p.Do(ctx, "P", all); err == nil || !strings.Contains(err.Error(), "402") {
		t.Fatalf("err %v", err)
	}
	// A 4xx any CU would give is the answer: no failover.
	calls := 0
	notFound := func(ctx context.Context, u string) (Outcome, error) {
		calls++
		return Classify(404), errors.New("404")
	}
	if _, err := p.Do(ctx, "P", notFound); err == nil || calls != 1 {
		t.Fatalf("404: err %v after %d calls", err, calls)
	}
}

func TestTick(t *testing.T) {
	// Without Refresh or Run, use alone probes due CUs in the background.
	a := newFakeCU(t, "a", "3")
	b := newFakeCU(t, "b", "1")
	p, _ := New(Config{URLs: []string{a.srv.URL, b.srv.URL}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.Choose("x")
		if tb := p.Table(); tb.CUs[0].Probed && tb.CUs[1].Probed {
			if tb.CUs[0].URL != b.srv.URL || tb.CUs[0].Address != "b" {
				t.Fatalf("table %+v", tb)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no probe ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
