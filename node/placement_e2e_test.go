package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/placement"
)

// startCluster starts a node with n real CUs (each its own wallet and data)
// on free loopback ports, the MU placing processes over them and a router
// in front of them as the node's CU URL.
func startCluster(t *testing.T, cus int) *Node {
	return startClusterIn(t, t.TempDir(), cus, nil)
}

// startClusterIn is startCluster in dir (a restart keeps everything), with
// mod changing the configuration.
func startClusterIn(t *testing.T, dir string, cus int, mod func(*Config)) *Node {
	t.Helper()
	var n *Node
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		ports := make([]int, cus)
		for i := range ports {
			ports[i] = freePort(t)
		}
		cfg := Config{DataDir: dir, GatewayPort: freePort(t), SUPort: freePort(t),
			CUPort: ports[0], CUPorts: ports, CUs: cus, RouterPort: freePort(t), MUPort: freePort(t), BlockInterval: 100 * time.Millisecond}
		if mod != nil {
			mod(&cfg)
		}
		n, err = Start(context.Background(), cfg)
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

// TestCheapestCUAndFailover runs three real CUs with different wallets and
// per-message prices (5, 1, 3) funded by Transfers on a token process: the MU
// and the router send a process's work to the cheapest CU; when it stops, the
// next cheapest takes over with nothing lost, and the dearest never works.
func TestCheapestCUAndFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModule(t, "aos2_0_4_32.wasm")
	token, err := os.ReadFile("../cu/testdata/token.lua")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	// First a free network, to spawn the token process the priced CUs are
	// paid on (its id is the ledger they are started with).
	n := startClusterIn(t, dir, 3, nil)
	c := newClient(t, n)
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
	send := func(pid string, data string, tags ...client.Tag) string {
		t.Helper()
		id, err := c.Message(ctx, client.Message{Process: pid, Tags: tags, Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := c.WaitDelivered(wctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	eval := client.Tag{Name: "Action", Value: "Eval"}
	ledger := spawn("token")
	send(ledger, string(token), eval)
	worker, counter := spawn("worker"), spawn("counter")
	send(counter, `Count = 0 Seen = {} Handlers.add("inc", Handlers.utils.hasMatchingTag("Action", "Inc"), function (msg)
		Count = Count + 1 Seen[msg.Data] = (Seen[msg.Data] or 0) + 1 end)`, eval)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = startClusterIn(t, dir, 3, func(cfg *Config) {
		cfg.CUPrices = []cu.Prices{{Message: 5}, {Message: 1}, {Message: 3}}
		cfg.Ledger = ledger
	})
	c = newClientAs(t, n, c.Signer)
	cheapest, next, dearest := n.CUURLs[1], n.CUURLs[2], n.CUURLs[0]
	tb := n.MU.Placement().Table()
	if tb.CUs[0].URL != cheapest || tb.CUs[1].URL != next || tb.CUs[2].URL != dearest || tb.CUs[0].Prices.Message != "1" {
		t.Fatalf("placement order %+v", tb.CUs)
	}
	// Fund the two cheaper CUs (the process owner pays for its messages).
	for _, i := range []int{1, 2} {
		send(ledger, "", client.Tag{Name: "Action", Value: "Transfer"}, client.Tag{Name: "Recipient", Value: n.CUAddresses[i]},
			client.Tag{Name: "Quantity", Value: "100000"})
	}
	usage := func(cuURL, pid string) int {
		t.Helper()
		var u struct {
			Usage []struct {
				Messages int `json:"messages"`
			} `json:"usage"`
		}
		getJSON(t, cuURL+"/usage/"+pid, &u)
		n := 0
		for _, p := range u.Usage {
			n += p.Messages
		}
		return n
	}
	const total = 20
	onCheapest := 0
	for i := 1; i <= total; i++ {
		if i == total/2+1 {
			onCheapest = usage(cheapest, worker)
			if got := onCheapest; got < total/2 {
				t.Fatalf("the cheapest CU evaluated %d messages of the worker, want %d", got, total/2)
			}
			if err := n.StopCU(1); err != nil {
				t.Fatal(err)
			}
		}
		id := send(worker, fmt.Sprintf(`Send({ Target = %q, Action = "Inc", Data = "%d" }) return "sent %d"`, counter, i, i), eval)
		r, err := c.Result(ctx, worker, id) // through the router
		if err != nil || r.Failed() || r.OutputData() != fmt.Sprintf("sent %d", i) {
			t.Fatalf("result %d: %v %+v", i, err, r)
		}
	}
	if got := usage(next, worker); got < total/2 {
		t.Fatalf("the next cheapest CU evaluated %d messages of the worker after the failover, want %d", got, total/2)
	}
	t.Logf("worker messages evaluated: cheapest %d before it stopped, next %d, dearest %d", onCheapest, usage(next, worker), usage(dearest, worker))
	if got := usage(dearest, worker); got != 0 {
		t.Fatalf("the dearest CU evaluated %d messages", got)
	}
	id := send(counter, fmt.Sprintf(`local bad = 0 for i = 1, %d do if Seen[tostring(i)] ~= 1 then bad = bad + 1 end end
		return tostring(Count) .. "/" .. tostring(bad)`, total), eval)
	r, err := c.Result(ctx, counter, id)
	if err != nil || r.OutputData() != fmt.Sprintf("%d/0", total) {
		t.Fatalf("counter (count/bad): %v %q", err, r.OutputData())
	}
}

// newClientAs is newClient signing with s (the same wallet after a restart).
func newClientAs(t *testing.T, n *Node, s ans104.Signer) *client.Client {
	c := client.New(s)
	c.Gateway, c.SU, c.CU, c.MU = n.GatewayURL, n.SUURL, n.CUURL, n.MUURL
	return c
}

func TestCUPorts(t *testing.T) {
	def := Config{GatewayPort: 4000, MUPort: 4002, SUPort: 4003, CUPort: 4004, HBPort: 8734, ExplorerPort: 4005, RouterPort: 4010}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want []int
	}{
		{"one", func(c *Config) { c.CUs = 1 }, []int{4004}},
		{"skips the explorer", func(c *Config) { c.CUs = 3 }, []int{4004, 4006, 4007}},
		{"skips the router", func(c *Config) { c.CUs = 3; c.CUPort = 4008 }, []int{4008, 4009, 4011}},
		{"explorer off", func(c *Config) { c.CUs = 3; c.ExplorerPort = 0 }, []int{4004, 4005, 4006}},
		{"given", func(c *Config) { c.CUs = 2; c.CUPorts = []int{9, 7} }, []int{9, 7}},
	} {
		cfg := def
		c.mod(&cfg)
		if got := cuPorts(cfg); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
