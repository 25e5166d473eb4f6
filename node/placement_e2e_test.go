package node

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/placement"
)

// startCluster starts a node with n real CUs (each its own wallet and data)
// on free loopback ports, the MU placing processes over them and a router
// in front of them as the node's CU URL.
func startCluster(t *testing.T, cus int) *Node {
	t.Helper()
	dir := t.TempDir()
	var n *Node
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		ports := make([]int, cus)
		for i := range ports {
			ports[i] = freePort(t)
		}
		n, err = Start(context.Background(), Config{DataDir: dir, GatewayPort: freePort(t), SUPort: freePort(t),
			CUPort: ports[0], CUPorts: ports, CUs: cus, RouterPort: freePort(t), MUPort: freePort(t), BlockInterval: 100 * time.Millisecond})
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

// TestFailoverAcrossCUs runs aos processes on three real CUs behind the MU's
// placement and the router, stops the CU the sender runs on in the middle of
// a stream of messages, and checks that nothing is lost: every message's
// result is obtained (through the router), and each message the sender's
// outbox holds reaches its target exactly once.
func TestFailoverAcrossCUs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModule(t, "aos2_0_4_32.wasm")
	n := startCluster(t, 3)
	if len(n.CUs) != 3 || n.CUURL == n.CUURLs[0] {
		t.Fatalf("CUs %v, client CU URL %s", n.CUURLs, n.CUURL)
	}
	addrs := map[string]bool{}
	for _, a := range n.CUAddresses {
		addrs[a] = true
	}
	if len(addrs) != 3 {
		t.Fatalf("the CUs share wallets: %v", n.CUAddresses)
	}
	c := newClient(t, n) // c.CU is the router
	ctx := context.Background()
	module, err := c.PublishModule(ctx, wasm, client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	spawn := func(name string) string {
		pid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: n.SUAddress, Tags: []client.Tag{{Name: "Authority", Value: n.MUAddress}, {Name: "Name", Value: name}}})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	eval := func(pid, code string) (string, *client.Result) {
		t.Helper()
		id, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte(code)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Result(ctx, pid, id)
		if err != nil {
			t.Fatalf("result of %s: %v", id, err)
		}
		if r.Failed() {
			t.Fatalf("%s: %s", code, r.Error)
		}
		return id, r
	}
	sender, counter := spawn("sender"), spawn("counter")
	eval(counter, `Count = 0 Seen = {} Handlers.add("inc", Handlers.utils.hasMatchingTag("Action", "Inc"), function (msg)
		Count = Count + 1 Seen[msg.Data] = (Seen[msg.Data] or 0) + 1 end)`)

	p := n.MU.Placement()
	victim, err := p.Choose(sender)
	if err != nil {
		t.Fatal(err)
	}
	victimIdx := -1
	for i, u := range n.CUURLs {
		if u == victim {
			victimIdx = i
		}
	}
	const total = 30
	var ids []string
	for i := 1; i <= total; i++ {
		if i == total/2 {
			if err := n.StopCU(victimIdx); err != nil {
				t.Fatal(err)
			}
		}
		id, r := eval(sender, fmt.Sprintf(`Send({ Target = %q, Action = "Inc", Data = "%d" }) return "sent %d"`, counter, i, i))
		if r.OutputData() != fmt.Sprintf("sent %d", i) || len(r.Messages) != 1 {
			t.Fatalf("message %d: output %q, %d messages", i, r.OutputData(), len(r.Messages))
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := c.WaitDelivered(wctx, id)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, r := eval(counter, fmt.Sprintf(`local dup = 0 for i = 1, %d do local n = Seen[tostring(i)] or 0 if n ~= 1 then dup = dup + 1 end end
		return tostring(Count) .. "/" .. tostring(dup)`, total))
	if got, want := r.OutputData(), fmt.Sprintf("%d/0", total); got != want {
		t.Fatalf("counter saw %s (count/bad), want %s", got, want)
	}

	// The SDK over the CUs themselves (its own placement table, as a client
	// elsewhere has) reads every result too: its first choice for the sender
	// is the stopped CU, so it fails over.
	sdk := newClient(t, n)
	if err := sdk.UseCUs(n.CUURLs, false); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if r, err := sdk.Result(ctx, sender, id); err != nil || r.Failed() || len(r.Messages) != 1 {
			t.Fatalf("SDK result of %s: %v %+v", id, err, r)
		}
	}
	if u, _ := sdk.CUs.Choose(sender); u == victim {
		t.Fatal("the SDK still places the sender on the stopped CU")
	}

	// The MU moved the sender off the stopped CU and says so.
	if u, _ := p.Choose(sender); u == victim {
		t.Fatalf("the sender is still placed on the stopped CU %s", victim)
	}
	tb := p.Table()
	if tb.Demotions == 0 {
		t.Fatalf("no CU was demoted: %+v", tb)
	}
	for _, row := range tb.CUs {
		if row.URL == victim && row.Healthy {
			t.Fatalf("the stopped CU is healthy in the MU's table: %+v", tb)
		}
	}
	// Cron monitors fail over too: a 1-second cron whose outbox ticks a sink
	// keeps ticking after the CU it runs on stops (cursors are the same on
	// every CU).
	sink := spawn("sink")
	eval(sink, `Ticks = 0 Handlers.add("tick", Handlers.utils.hasMatchingTag("Action", "Tick"), function () Ticks = Ticks + 1 end)`)
	cronPid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: n.SUAddress, Tags: []client.Tag{{Name: "Authority", Value: n.MUAddress},
		{Name: "Cron-Interval", Value: "1-second"}, {Name: "Cron-Tag-Action", Value: "Cron"}}})
	if err != nil {
		t.Fatal(err)
	}
	eval(cronPid, fmt.Sprintf(`Handlers.add("cron", Handlers.utils.hasMatchingTag("Action", "Cron"), function () Send({ Target = %q, Action = "Tick" }) end)`, sink))
	if err := c.Monitor(ctx, cronPid); err != nil {
		t.Fatal(err)
	}
	ticksAtLeast := func(want int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, r := eval(sink, "return Ticks")
			var got int
			fmt.Sscan(r.OutputData(), &got)
			if got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the sink has %d ticks, want %d", got, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	ticksAtLeast(2)
	cronCU, _ := p.Choose(cronPid)
	for i, u := range n.CUURLs {
		if u == cronCU {
			if err := n.StopCU(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, r = eval(sink, "return Ticks")
	var before int
	fmt.Sscan(r.OutputData(), &before)
	ticksAtLeast(before + 2)
	if err := c.Unmonitor(ctx, cronPid); err != nil {
		t.Fatal(err)
	}

	// The router's own table (GET /) and its health endpoint.
	var root struct {
		Placement placement.Table `json:"placement"`
	}
	getJSON(t, n.CUURL+"/", &root)
	if len(root.Placement.CUs) != 3 || root.Placement.Tracked == 0 {
		t.Fatalf("router table %+v", root.Placement)
	}
	var hz struct {
		OK         bool `json:"ok"`
		HealthyCUs int  `json:"healthyCUs"`
	}
	getJSON(t, n.CUURL+"/healthz", &hz)
	if !hz.OK || hz.HealthyCUs < 1 || hz.HealthyCUs > 2 {
		t.Fatalf("healthz %+v", hz)
	}
}
