package cu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
)

// TestEndToEnd spawns aos through the real SU, locates the SU through the
// gateway's Scheduler-Location record and checks /result, outbox messages,
// /results paging, dry-run isolation and /state.
func TestEndToEnd(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.su.Flush(ctx); err != nil { // process + Scheduler-Location on the gateway
		t.Fatal(err)
	}
	_, cuURL := n.newCU(Config{}, true)

	m1 := n.eval(pid, "return 1+1")
	r := result(t, cuURL, pid, m1)
	if r.data() != "2" || r.GasUsed == nil {
		t.Fatalf("1+1: %+v", r)
	}
	// Boot result (message id == process id).
	result(t, cuURL, pid, pid)

	// A handler that replies: the outbox message targets the sender.
	n.eval(pid, `Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function(m) m.reply({ Data = "pong", Action = "Pong" }) end)`)
	peer := strings.Repeat("P", 43)
	probe, _ := ans104.Sign(clientKey, nil, ans104.Options{})
	ping := n.send(pid, "hi", ans104.Tag{Name: "Action", Value: "Ping"})
	r = result(t, cuURL, pid, ping)
	if len(r.Messages) != 1 || r.Messages[0].Target != probe.OwnerAddress() || r.Messages[0].Data != "pong" {
		t.Fatalf("reply: %+v", r)
	}
	tags := map[string]string{}
	for _, tg := range r.Messages[0].Tags {
		tags[tg.Name] = tg.Value
	}
	if tags["Action"] != "Pong" || tags["Type"] != "Message" || tags["Data-Protocol"] != "ao" || len(r.Messages[0].Anchor) != 32 {
		t.Fatalf("reply tags: %v anchor %q", tags, r.Messages[0].Anchor)
	}

	// Dry-run sees the state and changes nothing.
	n.eval(pid, "X = 41")
	last := n.eval(pid, "return X")
	if got := result(t, cuURL, pid, last).data(); got != "41" {
		t.Fatalf("X = %q", got)
	}
	body := `{"Target":"` + pid + `","Owner":"` + peer + `","Tags":[{"name":"Action","value":"Eval"}],"Data":"X = X + 100; return X"}`
	resp, err := http.Post(cuURL+"/dry-run?process-id="+pid, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var dr resultJSON
	json.NewDecoder(resp.Body).Decode(&dr)
	resp.Body.Close()
	// aos refuses Eval from a non-owner: either way X stays 41 below.
	t.Logf("dry-run: status %d output %s error %s", resp.StatusCode, dr.Output, dr.Error)
	body = `{"Target":"` + pid + `","Owner":"` + "OWNER" + `","Tags":[{"name":"Action","value":"Eval"}],"Data":"return X + 1"}`
	resp, _ = http.Post(cuURL+"/dry-run?process-id="+pid, "application/json", strings.NewReader(body))
	json.NewDecoder(resp.Body).Decode(&dr)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("dry-run status %d", resp.StatusCode)
	}
	after := n.eval(pid, "X = X + 1; return X")
	if got := result(t, cuURL, pid, after).data(); got != "42" {
		t.Fatalf("after dry-run X = %q, want 42", got)
	}

	// /results: all non-error evaluations, paged by cursor in both orders.
	var all Page
	getJSON(t, cuURL+"/results/"+pid+"?limit=100", &all)
	if len(all.Edges) < 7 || all.PageInfo.HasNextPage {
		t.Fatalf("results: %d edges, more=%v", len(all.Edges), all.PageInfo.HasNextPage)
	}
	for _, sortName := range []string{"ASC", "DESC"} {
		var got []string
		from := ""
		for {
			var pg Page
			getJSON(t, cuURL+"/results/"+pid+"?limit=2&sort="+sortName+"&from="+from, &pg)
			for _, e := range pg.Edges {
				got = append(got, e.Cursor)
			}
			if !pg.PageInfo.HasNextPage {
				break
			}
			from = pg.Edges[len(pg.Edges)-1].Cursor
		}
		if len(got) != len(all.Edges) {
			t.Fatalf("%s paging: %d edges, want %d", sortName, len(got), len(all.Edges))
		}
		for i := range got {
			j := i
			if sortName == "DESC" {
				j = len(got) - 1 - i
			}
			c1, _ := ParseCursor(got[i])
			c2, _ := ParseCursor(all.Edges[j].Cursor)
			if c1.Timestamp != c2.Timestamp || c1.Ordinate != c2.Ordinate || c1.Sort != sortName {
				t.Fatalf("%s paging order at %d: %+v vs %+v", sortName, i, c1, c2)
			}
		}
	}
	// The dry-run was never saved: no result mentions 142.
	b, _ := json.Marshal(all)
	if bytes.Contains(b, []byte("142")) {
		t.Fatal("dry-run result was stored")
	}
	var info struct {
		Address   string `json:"address"`
		Timestamp int64  `json:"timestamp"`
	}
	getJSON(t, cuURL+"/", &info)
	if info.Timestamp == 0 {
		t.Fatalf("GET /: %+v", info)
	}
	resp, _ = http.Get(cuURL + "/metrics")
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(mb, []byte("ao_cu_messages_evaluated_total")) {
		t.Fatalf("metrics: %s", mb)
	}
}

// TestCron checks cron results at the reference's ticks.
func TestCron(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn(ans104.Tag{Name: "Cron-Interval", Value: "1-second"}, ans104.Tag{Name: "Cron-Tag-Action", Value: "Tick"})
	_, cuURL := n.newCU(Config{}, false)
	first := n.eval(pid, `Ticks = 0; Handlers.add("tick", Handlers.utils.hasMatchingTag("Action", "Tick"), function(m) Ticks = Ticks + 1; print("tick " .. Ticks) end)`)
	r := result(t, cuURL, pid, first)
	if r.Error != nil {
		t.Fatalf("setup: %s", r.Error)
	}
	time.Sleep(3200 * time.Millisecond)
	var pg Page
	if code := getJSON(t, cuURL+"/cron/"+pid, &pg); code != 200 || len(pg.Edges) < 2 {
		t.Fatalf("cron: %d, %d edges", code, len(pg.Edges))
	}
	var prev int64
	for i, e := range pg.Edges {
		c, err := ParseCursor(e.Cursor)
		if err != nil || c.Cron != "0-1-second" {
			t.Fatalf("cron cursor %d: %+v %v", i, c, err)
		}
		if prev != 0 && c.Timestamp != prev+1000 {
			t.Fatalf("cron ticks %d then %d", prev, c.Timestamp)
		}
		prev = c.Timestamp
	}
	last := n.eval(pid, "return Ticks")
	if got := result(t, cuURL, pid, last).data(); got == "0" || got == "" {
		t.Fatalf("Ticks = %q", got)
	}
}

// TestCheckpointRestore compares a CU that checkpoints and evicts after every
// request with one that keeps replaying live, at several points.
func TestCheckpointRestore(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn()
	evicting, evURL := n.newCU(Config{MemoryBudget: 1, CheckpointEvery: 1}, false)
	_, liveURL := n.newCU(Config{}, false)
	for i := 0; i < 4; i++ {
		var last string
		for j := 0; j < 3; j++ {
			last = n.eval(pid, fmt.Sprintf("T = (T or 0) + %d; return T", i*3+j))
		}
		a := result(t, evURL, pid, last)
		b := result(t, liveURL, pid, last)
		if a.data() != b.data() {
			t.Fatalf("point %d: %q vs %q", i, a.data(), b.data())
		}
		if h1, h2 := stateHash(t, evURL, pid), stateHash(t, liveURL, pid); h1 != h2 {
			t.Fatalf("point %d: memory %s vs %s", i, h1, h2)
		}
	}
	if evicting.metrics.restores.Load() < 3 || evicting.metrics.evictions.Load() < 3 {
		t.Fatalf("restores %d evictions %d", evicting.metrics.restores.Load(), evicting.metrics.evictions.Load())
	}
}

// TestLimits: Memory-Limit over the maximum is 413, an unknown format 422.
func TestLimits(t *testing.T) {
	n := newNetwork(t)
	_, cuURL := n.newCU(Config{}, false)
	big := n.spawn(ans104.Tag{Name: "Memory-Limit", Value: "2-gb"})
	var e struct{ Error string }
	if code := getJSON(t, cuURL+"/result/"+big+"?process-id="+big, &e); code != 413 || !strings.Contains(e.Error, "Memory-Limit") {
		t.Fatalf("2-gb: %d %q", code, e.Error)
	}
	n2 := newNetwork(t, ans104.Tag{Name: "Module-Format", Value: "wasm32-unknown-unknown"}, ans104.Tag{Name: "Input-Encoding", Value: "JSON-1"},
		ans104.Tag{Name: "Output-Encoding", Value: "JSON-1"}, ans104.Tag{Name: "Memory-Limit", Value: "1-gb"}, ans104.Tag{Name: "Compute-Limit", Value: "1"})
	_, cu2 := n2.newCU(Config{}, false)
	bad := n2.spawn()
	if code := getJSON(t, cu2+"/result/"+bad+"?process-id="+bad, &e); code != 422 {
		t.Fatalf("bad format: %d %q", code, e.Error)
	}
	if code := getJSON(t, cuURL+"/results/x?from=abc", &e); code != 400 {
		t.Fatalf("bad cursor: %d", code)
	}
	// An unknown process is 404 on /results as on /result and /state.
	unknown := strings.Repeat("U", 43)
	if code := getJSON(t, cuURL+"/results/"+unknown, &e); code != 404 {
		t.Fatalf("results of an unknown process: %d", code)
	}
}

// TestParallel evaluates two processes at once; both must finish.
func TestParallel(t *testing.T) {
	n := newNetwork(t)
	_, cuURL := n.newCU(Config{}, false)
	p1, p2 := n.spawn(), n.spawn()
	m1 := n.eval(p1, "local s = 0; for i = 1, 3000000 do s = s + i end; return s")
	m2 := n.eval(p2, "local s = 0; for i = 1, 3000000 do s = s + i end; return s")
	done := make(chan string, 2)
	start := time.Now()
	for _, pm := range [][2]string{{p1, m1}, {p2, m2}} {
		go func() { done <- result(t, cuURL, pm[0], pm[1]).data() }()
	}
	for range 2 {
		if got := <-done; got != "4500001500000" {
			t.Fatalf("sum = %q", got)
		}
	}
	t.Logf("two processes in %v", time.Since(start))
}
