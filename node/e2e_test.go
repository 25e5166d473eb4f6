package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/mu"
)

// startNode starts a node on free loopback ports in a temporary directory.
func startNode(t *testing.T) *Node {
	t.Helper()
	dir := t.TempDir()
	var n *Node
	var err error
	// A free port can be taken by a parallel test before Start binds it.
	for attempt := 0; attempt < 5; attempt++ {
		n, err = Start(context.Background(), Config{DataDir: dir, GatewayPort: freePort(t), SUPort: freePort(t),
			CUPort: freePort(t), MUPort: freePort(t), BlockInterval: 100 * time.Millisecond})
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func newClient(t *testing.T, n *Node) *client.Client {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := client.New(ans104.NewEd25519Signer(key))
	c.Gateway, c.SU, c.CU, c.MU = n.GatewayURL, n.SUURL, n.CUURL, n.MUURL
	return c
}

// TestAOSThroughTheNode publishes the real aos 2.0.4 module, spawns a process
// and evaluates Lua in it, through the gateway, SU and CU of one node.
func TestAOSThroughTheNode(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModule(t, "aos2_0_4_32.wasm")
	n := startNode(t)
	c := newClient(t, n)
	ctx := context.Background()
	module, err := c.PublishModule(ctx, wasm, client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := c.SchedulerAddress(ctx)
	if err != nil || sched != n.SUAddress {
		t.Fatalf("scheduler %q, %v", sched, err)
	}
	spawn := func(tags ...client.Tag) string {
		t.Helper()
		pid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: sched, Tags: append([]client.Tag{{Name: "Authority", Value: n.MUAddress}}, tags...)})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	pid := spawn(client.Tag{Name: "Name", Value: "e2e"})
	evalIn := func(pid, code string) *client.Result {
		t.Helper()
		id, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte(code)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Result(ctx, pid, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed() {
			t.Fatalf("%s: %s", code, r.Error)
		}
		return r
	}
	eval := func(code string) *client.Result { t.Helper(); return evalIn(pid, code) }
	// until evaluates code in pid until it returns want: delivery between
	// processes is asynchronous.
	until := func(pid, code, want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := evalIn(pid, code).OutputData()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				// Show the MU steps that did not finish, to say where delivery stopped.
				rows, _, _ := n.MU.Trace(ctx, mu.TraceQuery{PageSize: 1000, Page: 1})
				for _, r := range rows {
					if r.Status != "done" {
						t.Logf("MU step %+v", r)
					}
				}
				t.Fatalf("%s in %s: %q, want %q", code, pid, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if r := eval("return 1+1"); r.OutputData() != "2" || r.Prompt() == "" {
		t.Fatalf("return 1+1: %s", r.Output)
	}
	eval("Counter = 41")
	dr, err := c.DryRun(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte("Counter = Counter + 1 return Counter")})
	if err != nil || dr.OutputData() != "42" {
		t.Fatalf("dry-run: %v %+v", err, dr)
	}
	if r := eval("return Counter"); r.OutputData() != "41" {
		t.Fatalf("dry-run changed state: %s", r.Output)
	}
	if r := eval(`Send({ Target = ao.id, Action = "Ping", Data = "x" }) return "sent"`); len(r.Messages) != 1 || r.Messages[0].Target != pid {
		t.Fatalf("outbox: %+v", r.Messages)
	}
	page, err := c.Results(ctx, pid, client.ResultsQuery{Sort: "ASC", Limit: 2})
	if err != nil || len(page.Edges) != 2 {
		t.Fatalf("results: %v %+v", err, page)
	}
	next, err := c.Results(ctx, pid, client.ResultsQuery{Sort: "ASC", Limit: 2, From: page.Edges[1].Cursor})
	if err != nil || len(next.Edges) == 0 || next.Edges[0].Cursor == page.Edges[1].Cursor {
		t.Fatalf("results page 2: %v %+v", err, next)
	}

	// Ping-pong between two processes through the MU.
	pong := spawn(client.Tag{Name: "Name", Value: "pong"})
	evalIn(pong, `Seen = {} Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (msg) table.insert(Seen, msg.Data) msg.reply({ Action = "Pong", Data = msg.Data }) end)`)
	eval(`Got = {} Handlers.add("pong", Handlers.utils.hasMatchingTag("Action", "Pong"), function (msg) table.insert(Got, msg.Data) end)`)
	for i := range 3 {
		eval(fmt.Sprintf(`Send({ Target = %q, Action = "Ping", Data = "%d" })`, pong, i))
	}
	defer func() {
		if t.Failed() {
			t.Logf("pong saw %s", evalIn(pong, `return table.concat(Seen, ",") .. " inbox " .. #Inbox`).OutputData())
			t.Logf("pid inbox %s", evalIn(pid, `local t = {} for _, m in ipairs(Inbox) do t[#t+1] = (m.Action or "?") .. ":" .. tostring(m.Data) .. ":" .. tostring(m["X-Reference"]) end return table.concat(t, " | ")`).OutputData())
		}
	}()
	until(pid, `return table.concat(Got, ",")`, "0,1,2")

	// A process spawns a child and hears Spawned.
	eval(`Handlers.add("spawned", Handlers.utils.hasMatchingTag("Action", "Spawned"), function (msg) Child = msg.Process end)`)
	eval(fmt.Sprintf(`Spawn(ao.env.Process.Tags.Module, { Tags = { Authority = %q, Name = "child" } })`, n.MUAddress))
	until(pid, `return Child and #Child or 0`, "43")

	// Cron through Monitor: a 1-second cron whose outbox reaches another process.
	sink := spawn(client.Tag{Name: "Name", Value: "sink"})
	evalIn(sink, `Ticks = 0 Handlers.add("tick", Handlers.utils.hasMatchingTag("Action", "Tick"), function () Ticks = Ticks + 1 end)`)
	cron := spawn(client.Tag{Name: "Cron-Interval", Value: "1-second"}, client.Tag{Name: "Cron-Tag-Action", Value: "Cron"})
	evalIn(cron, fmt.Sprintf(`Handlers.add("cron", Handlers.utils.hasMatchingTag("Action", "Cron"), function () Send({ Target = %q, Action = "Tick" }) end)`, sink))
	if err := c.Monitor(ctx, cron); err != nil {
		t.Fatal(err)
	}
	until(sink, `return Ticks >= 2 and "ticking" or tostring(Ticks)`, "ticking")
	if err := c.Unmonitor(ctx, cron); err != nil {
		t.Fatal(err)
	}

	// A chain of 10 processes, each forwarding the message to the next.
	chain := make([]string, 10)
	for i := range chain {
		chain[i] = spawn(client.Tag{Name: "Name", Value: fmt.Sprintf("link%d", i)})
	}
	for i, p := range chain {
		next := ""
		if i+1 < len(chain) {
			next = chain[i+1]
		}
		evalIn(p, fmt.Sprintf(`Next = %q Handlers.add("fwd", Handlers.utils.hasMatchingTag("Action", "Forward"), function (msg)
			Hops = msg.Data .. ">" .. %d
			if Next ~= "" then Send({ Target = Next, Action = "Forward", Data = Hops }) end end)`, next, i))
	}
	if _, err := c.Message(ctx, client.Message{Process: chain[0], Tags: []client.Tag{{Name: "Action", Value: "Forward"}}, Data: []byte("start")}); err != nil {
		t.Fatal(err)
	}
	until(chain[9], `return Hops or ""`, "start>0>1>2>3>4>5>6>7>8>9")

	// An assignment pushed from a process's outbox: alpha assigns one of its
	// messages to the sink, which runs it.
	evalIn(sink, `ao.addAssignable("from-alpha", function (msg) return msg.Action == "Assigned" end) Handlers.add("assigned", Handlers.utils.hasMatchingTag("Action", "Assigned"), function (msg) AssignedData = msg.Data end)`)
	mine, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Assigned"}}, Data: []byte("via outbox")})
	if err != nil {
		t.Fatal(err)
	}
	if r := eval(fmt.Sprintf(`Assign({ Processes = { %q }, Message = %q }) return "ok"`, sink, mine)); len(r.Assignments) != 1 {
		t.Fatalf("outbox assignments: %s", r.Assignments)
	}
	until(sink, `return AssignedData or ""`, "via outbox")

	// Assign an existing message to a second process.
	evalIn(sink, `ao.addAssignable("notes", function (msg) return msg.Action == "Note" end) Handlers.add("note", Handlers.utils.hasMatchingTag("Action", "Note"), function (msg) Note = msg.Data end)`)
	note, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Note"}}, Data: []byte("assigned")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Result(ctx, pid, note); err != nil {
		t.Fatal(err)
	}
	aid, err := c.Assign(ctx, client.Assignment{Process: sink, Message: note})
	if err != nil || len(aid) != 43 {
		t.Fatalf("assign: %q %v", aid, err)
	}
	until(sink, `return Note or ""`, "assigned")
}
