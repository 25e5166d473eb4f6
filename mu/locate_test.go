package mu

import (
	"context"
	"sync"
	"testing"

	"github.com/aonode/aonode/wallet"
)

// countingGateway is the real HTTP gateway client, counting process lookups.
type countingGateway struct {
	GatewayClient
	mu   sync.Mutex
	tags map[string]int
}

func (g *countingGateway) Tags(ctx context.Context, id string) ([]Tag, error) {
	g.mu.Lock()
	g.tags[id]++
	g.mu.Unlock()
	return g.GatewayClient.Tags(ctx, id)
}

func (g *countingGateway) lookups(id string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tags[id]
}

// TestSpawnedProcessNeedsNoGateway: a process spawned through the MU, by a
// user or from an outbox, is located from what the MU wrote to the SU,
// never by asking the gateway (which learns of it only when the SU
// publishes it), also after a restart (issue 20 item 4, the MU's side).
func TestSpawnedProcessNeedsNoGateway(t *testing.T) {
	e := newNet(t)
	e.muW = genWallet(t, wallet.Ed25519)
	e.muDir = t.TempDir()
	gw := &countingGateway{GatewayClient: NewHTTPGateway(e.gwURL), tags: map[string]int{}}
	withGW := func(c *Config) { c.Gateway = gw }
	e.startMU(withGW)
	parent := e.spawn("parent")
	var child string
	e.cu.script = func(pid string, m suMsg) map[string]any {
		switch {
		case pid == parent && m.tag("Action") == "Go":
			return map[string]any{"Spawns": []any{map[string]any{"Data": "x", "Tags": tg("Data-Protocol", "ao", "Type", "Process", "Module", e.module, "Name", "child")}}}
		case pid == parent && m.tag("Action") == "Spawned":
			// Straight away, from the outbox, to the new process.
			return map[string]any{"Messages": []any{outMsg(m.tag("Process"), "1", tg("Action", "Welcome")...)}}
		}
		return nil
	}
	e.send(parent, tg("Action", "Go")...)
	eventually(t, "the Spawned reply", func() bool {
		for _, m := range e.messagesTo(parent) {
			if m.tag("Action") == "Spawned" {
				child = m.tag("Process")
				return true
			}
		}
		return false
	})
	e.send(child, tg("Action", "Hi")...)
	eventually(t, "both messages to the child", func() bool { return len(e.messagesTo(child)) == 2 })
	e.idle()
	e.mu.Close()
	e.startMU(withGW)
	e.send(child, tg("Action", "After-Restart")...)
	e.send(parent, tg("Action", "After-Restart")...)
	e.idle()
	if n := len(e.messagesTo(child)); n != 3 {
		t.Fatalf("child got %d messages, want 3", n)
	}
	for name, id := range map[string]string{"parent": parent, "child": child} {
		if n := gw.lookups(id); n != 0 {
			t.Fatalf("the MU asked the gateway %d times for the %s process it spawned", n, name)
		}
	}
}
