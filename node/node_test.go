package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}

// TestRunSchedulesAndKeepsEverything starts a node, finds its SU through the
// gateway as clients do, schedules a process and a message, restarts the node
// and finds everything again, in the SU and in the permanent store.
func TestRunSchedulesAndKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, GatewayPort: freePort(t), SUPort: freePort(t), CUPort: freePort(t), MUPort: freePort(t), BlockInterval: 50 * time.Millisecond}
	ctx := context.Background()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The Scheduler-Location record is visible at once (pending counts as newest).
	q := `query GetSchedulerLocation ($owner: String!) { transactions(owners: [$owner], tags: [{ name: "Data-Protocol", values: ["ao"] }, { name: "Type", values: ["Scheduler-Location"] }], sort: HEIGHT_DESC, first: 1) { edges { node { tags { name value } } } } }`
	var loc struct {
		Data struct {
			Transactions struct {
				Edges []struct {
					Node struct{ Tags []ans104.Tag }
				}
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(loc.Data.Transactions.Edges) == 0 {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]any{"owner": n.SUAddress}})
		resp, err := http.Post(n.GatewayURL+"/graphql", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&loc)
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("no Scheduler-Location record")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var url string
	for _, tag := range loc.Data.Transactions.Edges[0].Node.Tags {
		if tag.Name == "Url" {
			url = tag.Value
		}
	}
	if url != n.SUURL {
		t.Fatalf("Scheduler-Location Url %q, SU at %s", url, n.SUURL)
	}

	user := ans104.NewEd25519Signer(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))
	proc, _ := ans104.Sign(user, nil, ans104.Options{Tags: []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"},
		{Name: "Type", Value: "Process"}, {Name: "Module", Value: strings.Repeat("M", 43)}, {Name: "Scheduler", Value: n.SUAddress}}})
	msg, _ := ans104.Sign(user, []byte("hi"), ans104.Options{Target: mustID(t, proc.ID()), Tags: []ans104.Tag{{Name: "Data-Protocol", Value: "ao"},
		{Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Message"}}})
	for _, d := range []*ans104.DataItem{proc, msg} {
		resp, err := http.Post(url+"/", "application/octet-stream", bytes.NewReader(d.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("SU POST: %d %s", resp.StatusCode, b)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n, err = Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var page struct {
		Edges []struct {
			Node struct {
				Message    struct{ ID string }
				Assignment struct{ Tags []ans104.Tag }
			}
		}
	}
	getJSON(t, n.SUURL+"/"+proc.ID(), &page)
	if len(page.Edges) != 2 || page.Edges[1].Node.Message.ID != msg.ID() {
		t.Fatalf("schedule after restart: %+v", page)
	}
	// Assignments and messages reached the permanent store.
	for _, id := range []string{proc.ID(), msg.ID()} {
		if _, err := n.Store.Get(ctx, id); err != nil {
			t.Fatalf("%s not in the store: %v", id, err)
		}
	}
	var assignments struct {
		Data struct {
			Transactions struct{ Edges []any }
		}
	}
	body, _ := json.Marshal(map[string]any{"query": `query($p: String!) { transactions(tags: [{name: "Type", values: ["Assignment"]}, {name: "Process", values: [$p]}]) { edges { node { id } } } }`,
		"variables": map[string]any{"p": proc.ID()}})
	resp, err := http.Post(n.GatewayURL+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&assignments)
	resp.Body.Close()
	if len(assignments.Data.Transactions.Edges) != 2 {
		t.Fatalf("%d assignments in the permanent store, want 2", len(assignments.Data.Transactions.Edges))
	}
}

func mustID(t *testing.T, s string) []byte {
	id, err := ans104.DecodeID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id[:]
}

func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(context.Background(), Config{DataDir: t.TempDir(), GatewayPort: ln.Addr().(*net.TCPAddr).Port, SUPort: freePort(t), CUPort: freePort(t), MUPort: freePort(t)})
	if err == nil || !strings.Contains(err.Error(), "gateway port") || !strings.Contains(err.Error(), "fix: another program") {
		t.Fatalf("err = %v", err)
	}
}
