package mu

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/wallet"
)

// wantPushed checks a message the MU pushed: signed by the MU, with the
// outbox tags minus the stripped ones, then exactly the appended ones.
func (e *env) wantPushed(m suMsg, outboxTags []Tag, from, pushedFor string) {
	e.t.Helper()
	if m.Message.Owner.Address != e.mu.Address() {
		e.t.Fatalf("pushed message owner %s, want the MU %s", m.Message.Owner.Address, e.mu.Address())
	}
	want := without(outboxTags, "Data-Protocol", "Type", "From-Process", "From-Module", "Assignments")
	want = append(want, tg("Data-Protocol", "ao", "Type", "Message", "From-Process", from, "From-Module", e.module)...)
	if pushedFor != "" {
		want = append(want, Tag{Name: "Pushed-For", Value: pushedFor})
	}
	tagsEqual(e.t, "pushed message "+m.Message.ID, m.Message.Tags, want)
}

func TestPingPong(t *testing.T) {
	for _, kind := range []string{wallet.Ed25519, wallet.Arweave} {
		t.Run(kind, func(t *testing.T) {
			const rounds = 6
			e := newEnv(t, kind, nil)
			a, b := e.spawn("a"), e.spawn("b")
			peer := map[string]string{a: b, b: a}
			e.cu.script = func(pid string, m suMsg) map[string]any {
				if m.tag("Action") != "Ping" {
					return nil
				}
				n, _ := strconv.Atoi(m.tag("Round"))
				if n >= rounds {
					return nil
				}
				return map[string]any{"Messages": []any{outMsg(peer[pid], strconv.Itoa(n+1), tg("Action", "Ping", "Round", strconv.Itoa(n+1))...)}}
			}
			user := e.send(a, tg("Action", "Ping", "Round", "0")...)
			eventually(t, "all rounds", func() bool { return len(e.messagesTo(a))+len(e.messagesTo(b)) == rounds+1 })
			e.idle()
			for i, pid := range []string{a, b} {
				ms := e.messagesTo(pid)
				for j, m := range ms {
					round := 2*j + i
					if got := m.tag("Round"); got != strconv.Itoa(round) {
						t.Fatalf("process %d message %d: Round %s, want %d (each exactly once, in order)", i, j, got, round)
					}
					if round == 0 {
						if m.Message.ID != user {
							t.Fatalf("first message is not the user's")
						}
						continue
					}
					ref := strconv.Itoa(round)
					e.wantPushed(m, outMsg("", ref, tg("Action", "Ping", "Round", ref)...)["Tags"].([]Tag), peer[pid], user)
					if *m.Message.Anchor != strings.Repeat("0", 32-len(ref))+ref || *m.Message.Data != "data-"+ref || *m.Message.Target != pid {
						t.Fatalf("anchor/data/target: %q %q %q", *m.Message.Anchor, *m.Message.Data, *m.Message.Target)
					}
				}
			}
			// The trace shows every step pushed for the user message, all done.
			resp, err := http.Get(e.muURL + "/?debug=1&process=" + a + "&message=" + user + "&page-size=100")
			if err != nil {
				t.Fatal(err)
			}
			var tr struct {
				Edges []struct{ Node TraceRow }
			}
			json.NewDecoder(resp.Body).Decode(&tr)
			resp.Body.Close()
			// ingest + (rounds+1) pulls + rounds messages
			if len(tr.Edges) != 2*rounds+2 {
				t.Fatalf("trace has %d rows, want %d: %+v", len(tr.Edges), 2*rounds+2, tr.Edges)
			}
			for _, ed := range tr.Edges {
				if ed.Node.Status != "done" {
					t.Fatalf("trace row not done: %+v", ed.Node)
				}
			}
		})
	}
}

func TestChainOfTen(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, nil)
	var ps []string
	for i := range 10 {
		ps = append(ps, e.spawn("p"+strconv.Itoa(i)))
	}
	next := map[string]string{}
	for i := 0; i+1 < len(ps); i++ {
		next[ps[i]] = ps[i+1]
	}
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if m.tag("Action") != "Forward" || next[pid] == "" {
			return nil
		}
		hops, _ := strconv.Atoi(m.tag("Hops"))
		om := outMsg(next[pid], "1", tg("Action", "Forward", "Hops", strconv.Itoa(hops+1), "Payload", m.tag("Payload"))...)
		return map[string]any{"Messages": []any{om}}
	}
	user := e.send(ps[0], tg("Action", "Forward", "Hops", "0", "Payload", "the-payload")...)
	eventually(t, "the last process", func() bool { return len(e.messagesTo(ps[9])) == 1 })
	e.idle()
	for i := 1; i < 10; i++ {
		ms := e.messagesTo(ps[i])
		if len(ms) != 1 {
			t.Fatalf("process %d got %d messages", i, len(ms))
		}
		m := ms[0]
		if m.tag("Hops") != strconv.Itoa(i) || m.tag("Payload") != "the-payload" {
			t.Fatalf("process %d: %v", i, m.Message.Tags)
		}
		e.wantPushed(m, outMsg("", "1", tg("Action", "Forward", "Hops", strconv.Itoa(i), "Payload", "the-payload")...)["Tags"].([]Tag), ps[i-1], user)
	}
}

func TestSpawnAndSpawned(t *testing.T) {
	e := newEnv(t, wallet.Arweave, nil)
	parent := e.spawn("parent")
	childModule := randomID()
	spawnTags := tg("Data-Protocol", "ao", "Variant", "ao.TN.1", "Type", "Process", "From-Process", parent,
		"From-Module", "stale-module", "Module", childModule, "Reference", "7", "Name", "child")
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if pid == parent && m.tag("Action") == "Go" {
			return map[string]any{"Spawns": []any{map[string]any{"Data": "NODATA", "Anchor": strings.Repeat("0", 31) + "7", "Tags": spawnTags}}}
		}
		return nil
	}
	user := e.send(parent, tg("Action", "Go")...)
	var reply suMsg
	eventually(t, "the Spawned reply", func() bool {
		for _, m := range e.messagesTo(parent) {
			if m.tag("Action") == "Spawned" {
				reply = m
				return true
			}
		}
		return false
	})
	e.idle()
	child := reply.tag("Process")
	// The new process, as the SU stores it.
	resp, err := http.Get(e.suURL + "/processes/" + child)
	if err != nil {
		t.Fatal(err)
	}
	var proc struct {
		ProcessID string `json:"process_id"`
		Owner     struct{ Address string }
		Tags      []Tag
		Data      *string
		Anchor    *string
		Target    *string
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &proc); err != nil || proc.ProcessID != child {
		t.Fatalf("child process %s: %v %s", child, err, b)
	}
	wantProc := tg("Variant", "ao.TN.1", "From-Process", parent, "From-Module", e.module, "Module", childModule, "Reference", "7", "Name", "child",
		"Variant", "ao.TN.1", "Data-Protocol", "ao", "Type", "Process", "From-Process", parent, "Pushed-For", user, "Scheduler", e.suAddr)
	tagsEqual(t, "spawned process", proc.Tags, wantProc)
	if proc.Owner.Address != e.mu.Address() || proc.Data == nil || *proc.Data != "NODATA" || proc.Target != nil {
		t.Fatalf("process owner/data/target: %s %v %v", proc.Owner.Address, proc.Data, proc.Target)
	}
	wantReply := tg("From-Process", parent, "From-Module", "stale-module", "Module", childModule, "Reference", "7", "Name", "child",
		"Data-Protocol", "ao", "Type", "Message", "Process", child, "Action", "Spawned", "Variant", "ao.TN.1")
	tagsEqual(t, "Spawned reply", reply.Message.Tags, wantReply)
	if reply.Message.Owner.Address != e.mu.Address() || *reply.Message.Target != parent || *reply.Message.Data != " " {
		t.Fatalf("reply owner/target/data: %s %v %q", reply.Message.Owner.Address, *reply.Message.Target, *reply.Message.Data)
	}
	// A message to the child right away is delivered: the MU knows the
	// process without waiting for the gateway.
	e.send(child, tg("Action", "Hi")...)
	eventually(t, "message to the child", func() bool { return len(e.messagesTo(child)) == 1 })
}

func TestAssignments(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, nil)
	a, b, c, d := e.spawn("a"), e.spawn("b"), e.spawn("c"), e.spawn("d")
	var user string
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if pid != a || m.tag("Action") != "Go" {
			return nil
		}
		return map[string]any{
			// An outbox assignment of the user's message to b and c.
			"Assignments": []any{map[string]any{"Processes": []string{b, c}, "Message": m.Message.ID}},
			// An outbox message to b that also goes to d via its Assignments tag.
			"Messages": []any{outMsg(b, "1", tg("Action", "Note", "Assignments", `["`+d+`"]`)...)},
		}
	}
	user = e.send(a, tg("Action", "Go")...)
	assigned := func(pid, msg string) bool {
		for _, m := range e.schedule(pid) {
			if v, _ := tagValue(m.Assignment.Tags, "Message"); v == msg {
				return true
			}
		}
		return false
	}
	eventually(t, "assignments", func() bool { return assigned(b, user) && assigned(c, user) })
	var note suMsg
	eventually(t, "the note", func() bool {
		for _, m := range e.messagesTo(b) {
			if m.tag("Action") == "Note" {
				note = m
				return true
			}
		}
		return false
	})
	e.wantPushed(note, outMsg("", "1", tg("Action", "Note")...)["Tags"].([]Tag), a, user)
	eventually(t, "the note assigned to d", func() bool { return assigned(d, note.Message.ID) })
	e.idle()
	// The CU was asked for the result of each assignment (by assignment id).
	for _, pid := range []string{b, c} {
		for _, m := range e.schedule(pid) {
			if v, _ := tagValue(m.Assignment.Tags, "Message"); v == user {
				e.cu.mu.Lock()
				n := e.cu.calls[m.Assignment.ID]
				e.cu.mu.Unlock()
				if n == 0 {
					t.Fatalf("assignment %s on %s was never pulled", m.Assignment.ID, pid)
				}
			}
		}
	}
	// A user assignment through the MU.
	code, res := e.post("/?process-id="+d+"&assign="+user, nil)
	if code != 202 || res["message"] != "Processing Assignment" || res["id"] == "" {
		t.Fatalf("assign: %d %v", code, res)
	}
	if !assigned(d, user) {
		t.Fatal("user assignment missing")
	}
	// Sent again: the same assignment id.
	code2, res2 := e.post("/?process-id="+d+"&assign="+user, nil)
	if code2 != 202 || res2["id"] != res["id"] {
		t.Fatalf("assign again: %d %v, first %v", code2, res2, res)
	}
}

func TestMessageToWallet(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, nil)
	a := e.spawn("a")
	w := randomID()
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if m.tag("Action") == "Pay" {
			return map[string]any{"Messages": []any{outMsg(w, "1", tg("Action", "Credit-Notice")...)}}
		}
		return nil
	}
	e.send(a, tg("Action", "Pay")...)
	e.idle()
	gw := NewHTTPGateway(e.gwURL)
	// The pushed item is in the permanent store, with the MU's tags.
	body, _ := json.Marshal(map[string]any{"query": `query($r: [String!]) { transactions(recipients: $r) { edges { node { id owner { address } tags { name value } } } } }`,
		"variables": map[string]any{"r": []string{w}}})
	resp, err := http.Post(e.gwURL+"/graphql", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Credit-Notice") || !strings.Contains(string(b), e.mu.Address()) {
		t.Fatalf("wallet message not stored: %s", b)
	}
	_ = gw
}

// TestExactlyOnceOnLostAnswers: the SU schedules a push but its answer is
// lost, and the CU fails too; the MU retries with the same item and the
// target sees each message once. The retries are visible in the trace.
func TestExactlyOnceOnLostAnswers(t *testing.T) {
	e := newEnv(t, wallet.Arweave, nil)
	a, b := e.spawn("a"), e.spawn("b")
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if pid == a && m.tag("Action") == "Fan" {
			var ms []any
			for i := range 5 {
				ms = append(ms, outMsg(b, strconv.Itoa(i+1), tg("N", strconv.Itoa(i))...))
			}
			return map[string]any{"Messages": ms}
		}
		return nil
	}
	e.cu.mu.Lock()
	e.cu.fail = 3
	e.cu.mu.Unlock()
	e.suFlaky.mu.Lock()
	e.suFlaky.drop = 4 // the user's write and the first pushes: handled, answer lost
	e.suFlaky.mu.Unlock()
	user := e.send(a, tg("Action", "Fan")...)
	e.idle()
	ms := e.messagesTo(b)
	if len(ms) != 5 {
		t.Fatalf("b got %d messages, want 5", len(ms))
	}
	for i, m := range ms {
		if m.tag("N") != strconv.Itoa(i) {
			t.Fatalf("message %d has N=%s: not in outbox order", i, m.tag("N"))
		}
	}
	if n := len(e.messagesTo(a)); n != 1 {
		t.Fatalf("a got %d messages, want 1", n)
	}
	rows, _, err := e.mu.Trace(e.ctx, TraceQuery{ID: user, Page: 1, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	retried := 0
	for _, r := range rows {
		if r.Status != "done" {
			t.Fatalf("step not done: %+v", r)
		}
		if r.Attempts > 0 && r.LastError == "" {
			t.Fatalf("retried step without its error: %+v", r)
		}
		retried += r.Attempts
	}
	if retried < 4 {
		t.Fatalf("trace shows %d retries, want at least 4: %+v", retried, rows)
	}
}

func TestCron(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, nil)
	cronP, target := e.spawn("cron"), e.spawn("target")
	tick := func(n int) map[string]any {
		return map[string]any{"Messages": []any{outMsg(target, strconv.Itoa(n), tg("Action", "Tick", "N", strconv.Itoa(n))...)}, "Spawns": []any{}, "Assignments": []any{}}
	}
	e.cu.addCron(cronP, tick(0)) // before monitoring: delivered too (no earlier result)
	mon := e.sign(cronP, "", tg("Data-Protocol", "ao", "Type", "Message")...)
	resp, err := http.Post(e.muURL+"/monitor/"+cronP, "application/octet-stream", strings.NewReader(string(mon.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "Monitoring process" {
		t.Fatalf("monitor: %d %s", resp.StatusCode, b)
	}
	for n := 1; n < 4; n++ {
		e.cu.addCron(cronP, tick(n))
		eventually(t, "tick "+strconv.Itoa(n), func() bool { return len(e.messagesTo(target)) == n+1 })
	}
	// Restart the MU: the monitor and its cursor survive; nothing is pushed twice.
	e.mu.Close()
	e.startMU(nil)
	e.cu.addCron(cronP, tick(4))
	eventually(t, "tick 4 after restart", func() bool { return len(e.messagesTo(target)) == 5 })
	e.idle()
	for i, m := range e.messagesTo(target) {
		if m.tag("N") != strconv.Itoa(i) {
			t.Fatalf("tick %d: N=%s", i, m.tag("N"))
		}
		ref := strconv.Itoa(i)
		e.wantPushed(m, outMsg("", ref, tg("Action", "Tick", "N", ref)...)["Tags"].([]Tag), cronP, "") // no Pushed-For
	}
	req, _ := http.NewRequest(http.MethodDelete, e.muURL+"/monitor/"+cronP, strings.NewReader(string(mon.Bytes())))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "Process deleted" {
		t.Fatalf("delete monitor: %d %s", resp.StatusCode, b)
	}
}

func TestIngestAnswers(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, func(c *Config) { c.RateLimit = RateLimit{N: 4, Interval: 1 << 62} })
	a := e.spawn("a") // 1 of 4 (the limiter counts every well-formed item)
	resp, err := http.Get(e.muURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ao messenger unit" || resp.Header.Get("Ao-Mu-Address") != e.mu.Address() {
		t.Fatalf("GET /: %q, address header %q", b, resp.Header.Get("Ao-Mu-Address"))
	}
	good := e.sign(a, "x", tg("Data-Protocol", "ao", "Type", "Message")...)
	bad := append([]byte(nil), good.Bytes()...)
	bad[len(bad)-1] ^= 1
	cases := []struct {
		name string
		path string
		body []byte
		code int
	}{
		{"garbage", "/", []byte("not an item"), 400},
		{"bad signature", "/", bad, 400},
		{"no Data-Protocol", "/", e.sign(a, "x", tg("Type", "Message")...).Bytes(), 400},
		{"no Type", "/", e.sign(a, "x", tg("Data-Protocol", "ao")...).Bytes(), 400},
		{"other Type", "/", e.sign(a, "x", tg("Data-Protocol", "ao", "Type", "Module")...).Bytes(), 400},
		{"message without target", "/", e.sign("", "x", tg("Data-Protocol", "ao", "Type", "Message")...).Bytes(), 400},
		{"unknown process", "/", e.sign(randomID(), "x", tg("Data-Protocol", "ao", "Type", "Message")...).Bytes(), 400},
		{"only process-id", "/?process-id=" + a, nil, 400},
		{"only assign", "/?assign=" + a, nil, 400},
		{"bad assign id", "/?process-id=" + a + "&assign=xyz", nil, 400},
		{"good", "/", good.Bytes(), 202},       // 3 of 4 ("unknown process" was 2)
		{"same again", "/", good.Bytes(), 202}, // 4 of 4; already queued, nothing new
		{"rate limited", "/", e.sign(a, "y", tg("Data-Protocol", "ao", "Type", "Message")...).Bytes(), 429},
	}
	for _, c := range cases {
		code, m := e.post(c.path, c.body)
		if code != c.code {
			t.Fatalf("%s: %d %v, want %d", c.name, code, m, c.code)
		}
		if code >= 400 {
			if _, ok := m["error"].(string); !ok {
				t.Fatalf("%s: no JSON error: %v", c.name, m)
			}
		}
	}
	e.idle()
	if n := len(e.messagesTo(a)); n != 1 {
		t.Fatalf("process got %d messages, want 1", n)
	}
	// Trace: more than one of message/assign/spawn → 422.
	resp, _ = http.Get(e.muURL + "/?debug=1&process=" + a + "&message=x&spawn=y")
	resp.Body.Close()
	if resp.StatusCode != 422 {
		t.Fatalf("trace with two ids: %d", resp.StatusCode)
	}
	resp, _ = http.Get(e.muURL + "/metrics")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `mu_tasks_done_total{kind="ingest"}`) || !strings.Contains(string(b), `mu_http_requests_total{route="message",code="429"} 1`) {
		t.Fatalf("metrics:\n%s", b)
	}
	_ = ans104.Base64URL
}

// TestLongOutageLosesNothing: a CU that fails far more often than any fixed
// attempt cap (the reference MU's behaviour was to drop) still gets every
// message delivered once it recovers.
func TestLongOutageLosesNothing(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, func(c *Config) { c.RetryDelay, c.MaxRetryDelay = time.Millisecond, 2*time.Millisecond })
	a, b := e.spawn("a"), e.spawn("b")
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if pid == a && m.tag("Action") == "Go" {
			return map[string]any{"Messages": []any{outMsg(b, "after the outage")}}
		}
		return nil
	}
	e.cu.mu.Lock()
	e.cu.fail = 60
	e.cu.mu.Unlock()
	e.send(a, tg("Action", "Go")...)
	e.idle()
	if ms := e.messagesTo(b); len(ms) != 1 {
		t.Fatalf("b got %d messages after 60 CU failures, want 1", len(ms))
	}
}
