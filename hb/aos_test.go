package hb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/node"
)

// TestAOSCLISequence replays the HTTP sequence of the aos 2.0.16 CLI in its
// default (mainnet) mode (mainnet-and-market.md §2.4): the node address as
// Authority, spawn with aos's tags naming the public mainnet scheduler, the
// GraphQL lookup of the process by Name, an Eval per line (message, then
// result by slot), and the live-output poll (slot/current, then
// compute/results). The process is then one schedule and one state with the
// legacy routes, and trusts and answers a Ping pushed from a legacy process.
func TestAOSCLISequence(t *testing.T) {
	f := newFixture(t, node.Config{})
	ctx := context.Background()

	code, _, authority := f.do("GET", "/~meta@1.0/info/address", nil)
	if code != 200 {
		t.Fatalf("info/address: %d %s", code, authority)
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	spawn := f.item("", "1984",
		ans104.Tag{Name: "device", Value: "process@1.0"}, ans104.Tag{Name: "scheduler-device", Value: "scheduler@1.0"},
		ans104.Tag{Name: "push-device", Value: "push@1.0"}, ans104.Tag{Name: "execution-device", Value: "genesis-wasm@1.0"},
		ans104.Tag{Name: "Authority", Value: authority}, ans104.Tag{Name: "Scheduler", Value: "n_XZJhUnmldNFo4dhajoPZWhBXuJk-OcQr5JQ49c4Zo"},
		ans104.Tag{Name: "Module", Value: f.module}, ans104.Tag{Name: "App-Name", Value: "aos"}, ans104.Tag{Name: "Name", Value: "myproc"},
		ans104.Tag{Name: "aos-version", Value: "2.0.16"}, ans104.Tag{Name: "process-timestamp", Value: now},
		ans104.Tag{Name: "accept-codec", Value: "httpsig@1.0"}, ans104.Tag{Name: "Type", Value: "Process"})
	code, hdr, body := f.do("POST", "/push", spawn)
	pid := hdr.Get("process")
	if code != 200 || pid == "" {
		t.Fatalf("spawn: %d %s", code, body)
	}

	// aos finds an existing process by name through GraphQL.
	owner := ans104.Address(f.signer.Owner())
	q, _ := json.Marshal(map[string]any{"query": `query ($owners: [String!]) { transactions(first: 10, owners: $owners, tags: [
		{name: "Data-Protocol", values: ["ao"]}, {name: "Type", values: ["Process"]}, {name: "Name", values: ["myproc"]}]) { edges { node { id tags { name value } } } } }`,
		"variables": map[string]any{"owners": []string{owner}}})
	found := false
	for end := time.Now().Add(10 * time.Second); !found && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var out struct {
			Data struct {
				Transactions struct {
					Edges []struct{ Node struct{ ID string } }
				}
			}
		}
		if err := postJSON(f.n.GatewayURL+"/graphql", q, &out); err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Data.Transactions.Edges {
			found = found || e.Node.ID == pid
		}
	}
	if !found {
		t.Fatal("GraphQL does not find the process by owner and Name")
	}

	eval := func(code string) string {
		t.Helper()
		msg := f.item(pid, code, ans104.Tag{Name: "Action", Value: "Eval"}, ans104.Tag{Name: "message-timestamp", Value: now}, ans104.Tag{Name: "Type", Value: "Message"})
		st, _, body := f.do("POST", "/"+pid+"~process@1.0/push", msg)
		var pushed struct{ Slot int64 }
		if st != 200 || json.Unmarshal([]byte(body), &pushed) != nil {
			t.Fatalf("push %q: %d %s", code, st, body)
		}
		st, _, body = f.do("POST", "/"+pid+"~process@1.0/compute/results="+strconv.FormatInt(pushed.Slot, 10), f.item(pid, "1984"))
		var res struct {
			Raw struct {
				Output struct{ Data string }
				Error  any
			}
		}
		if st != 200 || json.Unmarshal([]byte(body), &res) != nil || res.Raw.Error != nil {
			t.Fatalf("result of %q: %d %s", code, st, body)
		}
		return res.Raw.Output.Data
	}
	if got := eval("1 + 41"); got != "42" {
		t.Fatalf("Eval 1 + 41 gave %q", got)
	}
	// Live output: the latest slot, then its results.
	_, _, cur := f.do("POST", "/"+pid+"/slot/current", f.item(pid, "1984"))
	code, _, body = f.do("POST", "/"+pid+"/compute/results="+cur, f.item(pid, "1984"))
	if cur != "1" || code != 200 || !strings.Contains(body, `"data":"42"`) {
		t.Fatalf("live poll: slot %q, results %d %s", cur, code, body)
	}

	// One schedule and one state with the legacy routes.
	id, err := f.c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte("Legacy = 'yes'; return Legacy")})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := f.c.Result(ctx, pid, id); err != nil || !strings.Contains(string(r.Output), "yes") {
		t.Fatalf("legacy result: %v %v", r, err)
	}
	if got := eval("return Legacy"); got != "yes" {
		t.Fatalf("state after a legacy message: Legacy = %q", got)
	}

	// A Ping pushed by the MU from a legacy-spawned process is trusted and answered.
	other, err := f.c.Spawn(ctx, client.Spawn{Module: f.module, Scheduler: f.n.SUAddress, Tags: []client.Tag{{Name: "Authority", Value: f.n.MUAddress}}})
	if err != nil {
		t.Fatal(err)
	}
	eval(`Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (m) m.reply({ Action = "Pong", Data = "pong" }) end)`)
	legacyEval := func(code string) string {
		t.Helper()
		id, err := f.c.Message(ctx, client.Message{Process: other, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte(code)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.c.Result(ctx, other, id)
		if err != nil || r.Failed() {
			t.Fatalf("legacy eval %q: %v %v", code, r, err)
		}
		var out struct{ Data string }
		json.Unmarshal(r.Output, &out)
		return out.Data
	}
	legacyEval(`Got = "none"; Handlers.add("pong", Handlers.utils.hasMatchingTag("Action", "Pong"), function (m) Got = m.Data end); Send({ Target = "` + pid + `", Action = "Ping" })`)
	for end := time.Now().Add(20 * time.Second); legacyEval("return Got") != "pong"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the aos-spawned process did not answer the Ping")
		}
	}
	// And the legacy process is readable through the AO-Core surface.
	code, _, body = f.do("GET", "/"+other+"~process@1.0/compute/results=0", nil)
	f.want("legacy process via AO-Core", code, body, 200, `"raw":{`)
}

func postJSON(u string, body []byte, out any) error {
	resp, err := http.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}
