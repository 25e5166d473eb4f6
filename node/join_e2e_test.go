package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/cu"
	"github.com/aonode/aonode/internal/interop"
)

// TestCUJoins: a CU added to a running cluster takes some processes (its
// fair share by rendezvous hashing, nothing moves between the others), and
// every process keeps its state and results across the move.
func TestCUJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModule(t, "aos2_0_4_32.wasm")
	n := startCluster(t, 2)
	c := newClient(t, n) // c.CU is the router, over the same placement as the MU
	ctx := context.Background()
	module, err := c.PublishModule(ctx, wasm, client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	eval := func(pid, code string) string {
		t.Helper()
		id, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte(code)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Result(ctx, pid, id)
		if err != nil || r.Failed() {
			t.Fatalf("result of %s: %v %+v", code, err, r)
		}
		return r.OutputData()
	}
	const procs = 12
	var pids []string
	for i := range procs {
		pid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: n.SUAddress, Tags: []client.Tag{{Name: "Authority", Value: n.MUAddress}}})
		if err != nil {
			t.Fatal(err)
		}
		eval(pid, fmt.Sprintf("N = %d; return N", i))
		pids = append(pids, pid)
	}
	p := n.MU.Placement()
	before := map[string]string{}
	for _, pid := range pids {
		before[pid], _ = p.Choose(pid)
	}

	// A third CU, with its own wallet and data, over the same gateway and SU.
	seed := make([]byte, 32)
	copy(seed, "aonode node test joining CU")
	gw := cu.NewHTTPGateway(n.GatewayURL)
	joined, err := cu.New(ctx, cu.Config{DataDir: filepath.Join(t.TempDir(), "cu-3"), Scheduler: cu.NewHTTPScheduler(n.SUURL, gw), Gateway: gw,
		Signer: ans104.NewEd25519Signer(ed25519.NewKeyFromSeed(seed))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(joined.Handler())
	t.Cleanup(func() { srv.Close(); joined.Close() })
	if err := p.Add(srv.URL); err != nil {
		t.Fatal(err)
	}
	p.Refresh(ctx)

	moved := 0
	for _, pid := range pids {
		now, _ := p.Choose(pid)
		switch {
		case now == srv.URL:
			moved++
		case now != before[pid]:
			t.Fatalf("%s moved between the old CUs, %s → %s", pid, before[pid], now)
		}
	}
	if moved == 0 || moved == procs {
		t.Fatalf("%d of %d processes moved to the new CU, want some", moved, procs)
	}
	// Every process, moved or not, continues from its state.
	for i, pid := range pids {
		if got := eval(pid, "N = N * 10; return N"); got != fmt.Sprint(i*10) {
			t.Fatalf("process %d after the join: %q, want %d", i, got, i*10)
		}
	}
	if joined.Evaluations() == 0 {
		t.Fatal("the new CU evaluated nothing")
	}
	t.Logf("%d of %d processes moved to the joining CU", moved, procs)

	// Verification through the router goes to a CU other than the one
	// that made the attestation, though that one is the process's own.
	pid := pids[0]
	own, _ := p.Choose(pid)
	id, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte("return N")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Result(ctx, pid, id); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(own + "/attestation/" + id + "?process-id=" + pid)
	if err != nil {
		t.Fatal(err)
	}
	att, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("attestation: %d %s", resp.StatusCode, att)
	}
	reqItem, err := ans104.Sign(ans104.NewEd25519Signer(ed25519.NewKeyFromSeed(seed)), att, ans104.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vreq, _ := http.NewRequest("POST", n.CUURL+"/verify?process-id="+pid, bytes.NewReader(reqItem.Bytes()))
	vreq.Header.Set("Accept", "application/json")
	vresp, err := http.DefaultClient.Do(vreq)
	if err != nil {
		t.Fatal(err)
	}
	vb, _ := io.ReadAll(vresp.Body)
	vresp.Body.Close()
	if vresp.StatusCode != 200 || !strings.Contains(string(vb), `"verdict":"agree"`) {
		t.Fatalf("verify through the router: %d %s", vresp.StatusCode, vb)
	}
	if by := vresp.Header.Get("X-Aonode-Cu"); by == own || by == "" {
		t.Fatalf("the attesting CU %s verified its own attestation (answered by %q)", own, by)
	}
}
