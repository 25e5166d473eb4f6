package cu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
)

// getState returns /state's memory hash and headers.
func getState(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, string(b), resp.Header
	}
	h := sha256.Sum256(b)
	return 200, hex.EncodeToString(h[:]), resp.Header
}

// TestStateAt: /state?to= is the memory after the last message at or
// before to, evaluated on the side when the live instance is past it, and
// the live instance keeps its later state.
func TestStateAt(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn()
	_, url1 := n.newCU(Config{}, false)
	var ms []string
	for _, code := range []string{"X = 1", "X = 2", "X = 3"} {
		ms = append(ms, n.eval(pid, code))
		time.Sleep(5 * time.Millisecond) // distinct timestamps
	}
	result(t, url1, pid, ms[2])
	_, latest, lh := getState(t, url1+"/state/"+pid)
	_, t1 := n.assignment(pid, ms[0])

	code, h1, hdr := getState(t, url1+"/state/"+pid+"?to="+t1["Timestamp"])
	if code != 200 || hdr.Get("Last-Timestamp") != t1["Timestamp"] || hdr.Get("Last-Ordinate") != t1["Nonce"] ||
		hdr.Get("Last-Block-Height") == "" || hdr.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("state?to: %d %s %v", code, h1, hdr)
	}
	if h1 == latest {
		t.Fatal("state?to= returned the latest memory")
	}
	// A fresh CU evaluating only up to m1 has the same memory.
	_, url2 := n.newCU(Config{}, false)
	if _, h, hdr2 := getState(t, url2+"/state/"+pid+"?to="+t1["Timestamp"]); h != h1 || hdr2.Get("Last-Ordinate") != t1["Nonce"] {
		t.Fatalf("fresh CU: %s (ordinate %s), want %s", h, hdr2.Get("Last-Ordinate"), h1)
	}
	// The live instance was not disturbed.
	if _, h, hdr := getState(t, url1+"/state/"+pid); h != latest || hdr.Get("Last-Ordinate") != lh.Get("Last-Ordinate") {
		t.Fatalf("live state changed: %s (ordinate %s)", h, hdr.Get("Last-Ordinate"))
	}
	if got := result(t, url1, pid, n.eval(pid, "return X")).data(); got != "3" {
		t.Fatalf("X = %q after state?to=", got)
	}
	// A to past every message is the latest state; the fresh CU moves
	// forward from where it was.
	if _, h, _ := getState(t, url2+"/state/"+pid+"?to=99999999999999"); h == h1 {
		t.Fatal("fresh CU did not move forward")
	}
	for _, c := range []struct {
		q    string
		code int
	}{{"abc", 400}, {"-5", 400}, {"1", 404}} {
		code, body, _ := getState(t, url1+"/state/"+pid+"?to="+c.q)
		var e struct{ Error string }
		if code != c.code || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Fatalf("to=%s: %d %s", c.q, code, body)
		}
	}
}

func dryRun(t *testing.T, url, pid, body, maxAge string) (int, resultJSON, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/dry-run?process-id="+pid, strings.NewReader(body))
	if to, ok := strings.CutPrefix(maxAge, "to="); ok {
		req.URL.RawQuery += "&to=" + to
		maxAge = ""
	}
	req.Header.Set("Content-Type", "application/json")
	if maxAge != "" {
		req.Header.Set("x-max-age", maxAge)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r resultJSON
	json.Unmarshal(b, &r)
	return resp.StatusCode, r, string(b)
}

// TestDryRunCache: results are cached by body, cache hits are free of the
// rate limit, x-max-age bounds how old the memory may be, and a dry-run
// never changes the process.
func TestDryRunCache(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn()
	owner, _ := ans104.Sign(clientKey, nil, ans104.Options{})
	eval := func(code string) string {
		return `{"Target":"` + pid + `","Owner":"` + owner.OwnerAddress() + `","Tags":[{"name":"Action","value":"Eval"}],"Data":"` + code + `"}`
	}
	limited, lURL := n.newCU(Config{DryRunRateLimit: 2}, false)
	x1 := n.eval(pid, "X = 1")
	result(t, lURL, pid, x1)
	for i := range 4 {
		if code, r, raw := dryRun(t, lURL, pid, eval("return X"), "60000"); code != 200 || r.data() != "1" {
			t.Fatalf("dry-run %d: %d %s", i, code, raw)
		}
	}
	if got := limited.metrics.dryRuns.Load(); got != 1 {
		t.Fatalf("%d dry-runs evaluated, want 1 (then cache hits)", got)
	}
	if code, _, raw := dryRun(t, lURL, pid, eval("return X + 1"), ""); code != 200 {
		t.Fatalf("second body: %d %s", code, raw)
	}
	if code, _, raw := dryRun(t, lURL, pid, eval("return X + 2"), ""); code != 429 || !strings.Contains(raw, `"error":"Rate limit exceeded"`) {
		t.Fatalf("third body: %d %s", code, raw)
	}
	if code, r, _ := dryRun(t, lURL, pid, eval("return X"), "60000"); code != 200 || r.data() != "1" {
		t.Fatalf("cache hit after the limit: %d", code)
	}

	_, url := n.newCU(Config{}, false)
	if _, r, _ := dryRun(t, url, pid, eval("return X"), ""); r.data() != "1" {
		t.Fatalf("X = %q", r.data())
	}
	n.eval(pid, "X = 2") // not yet seen by the CU
	// Memory up to a minute old will do: the CU does not ask the SU.
	if code, r, raw := dryRun(t, url, pid, eval("return X * 1"), "60000"); code != 200 || r.data() != "1" {
		t.Fatalf("x-max-age 60000: %d %s", code, raw)
	}
	// x-max-age 0: neither the cached result nor the memory may be old.
	if code, r, raw := dryRun(t, url, pid, eval("return X * 1"), "0"); code != 200 || r.data() != "2" {
		t.Fatalf("x-max-age 0: %d %s", code, raw)
	}
	// to: the state right after that message, though the process is past it.
	if code, r, raw := dryRun(t, url, pid, eval("return X * 1"), "to="+x1); code != 200 || r.data() != "1" {
		t.Fatalf("to=%s: %d %s", x1, code, raw)
	}
	if code, _, raw := dryRun(t, url, pid, eval("return X"), "soon"); code != 400 || !strings.Contains(raw, `"error"`) {
		t.Fatalf("bad x-max-age: %d %s", code, raw)
	}

	// A dry-run that assigns changes nothing, twice over.
	_, before, _ := getState(t, url+"/state/"+pid)
	for range 2 {
		if _, r, raw := dryRun(t, url, pid, eval("X = 999; return X"), "0"); r.data() != "999" {
			t.Fatalf("dry-run assignment: %s", raw)
		}
	}
	if _, after, _ := getState(t, url+"/state/"+pid); after != before {
		t.Fatal("a dry-run changed the process memory")
	}
	if got := result(t, url, pid, n.eval(pid, "return X")).data(); got != "2" {
		t.Fatalf("X = %q after dry-runs", got)
	}
	// A cached result is never older than the latest evaluated message,
	// whatever x-max-age allows (the repl's inbox check relies on it).
	if _, r, raw := dryRun(t, url, pid, eval("return X"), "60000"); r.data() != "2" {
		t.Fatalf("before the change: %s", raw)
	}
	result(t, url, pid, n.eval(pid, "X = 3"))
	for _, maxAge := range []string{"60000", ""} {
		if _, r, raw := dryRun(t, url, pid, eval("return X"), maxAge); r.data() != "3" {
			t.Fatalf("x-max-age %q after the change: %s (a stale cached result)", maxAge, raw)
		}
	}
	var all Page
	getJSON(t, url+"/results/"+pid+"?limit=100", &all)
	if b, _ := json.Marshal(all); bytes.Contains(b, []byte("999")) {
		t.Fatal("a dry-run result was stored")
	}
}
