package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/internal/interop"
)

// startNode starts a node on free loopback ports in a temporary directory.
func startNode(t *testing.T) *Node {
	t.Helper()
	n, err := Start(context.Background(), Config{DataDir: t.TempDir(), GatewayPort: freePort(t), SUPort: freePort(t),
		CUPort: freePort(t), MUPort: freePort(t), BlockInterval: 100 * time.Millisecond})
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
	pid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: sched, Tags: []client.Tag{{Name: "Name", Value: "e2e"}}})
	if err != nil {
		t.Fatal(err)
	}
	eval := func(code string) *client.Result {
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
}
