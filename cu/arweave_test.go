package cu

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/wallet"
)

func cuWallet(t testing.TB, seed string) *wallet.Wallet {
	t.Helper()
	w, err := wallet.Parse([]byte(`{"kty":"OKP","crv":"Ed25519","d":"` + ans104.Base64URL([]byte(fmt.Sprintf("%-32.32s", seed))) + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// assignment returns the SU's assignment of msg.
func (n *network) assignment(pid, msg string) (id string, tags map[string]string) {
	n.t.Helper()
	var m struct {
		Assignment struct {
			ID   string `json:"id"`
			Tags []struct{ Name, Value string }
		} `json:"assignment"`
	}
	if code := getJSON(n.t, n.suURL+"/"+msg+"?process-id="+pid, &m); code != 200 {
		n.t.Fatalf("SU message %s: %d", msg, code)
	}
	tags = map[string]string{}
	for _, tg := range m.Assignment.Tags {
		tags[tg.Name] = tg.Value
	}
	return m.Assignment.ID, tags
}

func evaluatedCount(s *Server) int64 {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return s.metrics.messages
}

// TestArweaveCheckpoint: CU A evaluates and publishes Checkpoint items; CU
// B, with an empty data dir and the same gateway, trusts A's address,
// skips two corrupt newer candidates, restores A's newest good checkpoint
// and evaluates only the messages after it, ending with A's results and
// memory.
func TestArweaveCheckpoint(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn()
	aw := cuWallet(t, "aonode cu test CU A wallet")
	a, aURL := n.newCU(Config{Signer: aw, PublishInterval: time.Nanosecond, CheckpointEvery: 1}, false)
	var ms []string
	for i := 1; i <= 3; i++ {
		m := n.eval(pid, fmt.Sprintf("N = (N or 0) + %d; return N", i))
		ms = append(ms, m)
		if got := result(t, aURL, pid, m).data(); got != fmt.Sprint(i*(i+1)/2) {
			t.Fatalf("A: N = %q", got)
		}
	}
	deadline := time.Now().Add(2 * time.Minute) // gzip -9 of 70 MB is slow under -race
	for a.metrics.published.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("A published %d checkpoints", a.metrics.published.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Q7 finds what A published, and A does not publish it twice.
	gw := NewHTTPGateway(n.gwURL)
	_, t3 := n.assignment(pid, ms[2])
	if ok, err := gw.CheckpointExists(context.Background(), a.Address(), pid, t3["Timestamp"], t3["Nonce"], ""); err != nil || !ok {
		t.Fatalf("Q7 for nonce %s: %v %v", t3["Nonce"], ok, err)
	}
	if ok, err := gw.CheckpointExists(context.Background(), a.Address(), pid, t3["Timestamp"], "99", ""); err != nil || ok {
		t.Fatalf("Q7 for nonce 99: %v %v", ok, err)
	}
	p, _ := a.process(context.Background(), pid)
	p.mu.Lock()
	mem, err := p.inst.Snapshot()
	snap := &proc{info: p.info, pos: p.pos}
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.publish(snap, mem, "00"); err != nil || a.metrics.publishSkipped.Load() != 1 || a.metrics.published.Load() != 3 {
		t.Fatalf("republish: %v, skipped %d, published %d", err, a.metrics.publishSkipped.Load(), a.metrics.published.Load())
	}

	// Two messages A has not seen, and two corrupt checkpoints claiming
	// the position of the first, signed by A.
	m4 := n.eval(pid, "N = N * 10; return N")
	time.Sleep(5 * time.Millisecond)
	m5 := n.eval(pid, "return N + 1")
	aid, at := n.assignment(pid, m4)
	badTags := func(sha string) []ans104.Tag {
		return []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Checkpoint"},
			{Name: "Module", Value: n.moduleID}, {Name: "Process", Value: pid}, {Name: "Nonce", Value: at["Nonce"]},
			{Name: "Timestamp", Value: at["Timestamp"]}, {Name: "Block-Height", Value: at["Block-Height"]},
			{Name: "Content-Type", Value: "application/octet-stream"}, {Name: "SHA-256", Value: sha}, {Name: "Content-Encoding", Value: "gzip"},
			{Name: "Unit-Identifier", Value: "test"}, {Name: "Ordinate", Value: at["Nonce"]}, {Name: "Assignment", Value: aid},
			{Name: "Hash-Chain", Value: at["Hash-Chain"]}, {Name: "Epoch", Value: at["Epoch"]}}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(mem)
	zw.Close()
	wrongHash := strings.Repeat("ab", 32)
	truncated := gz.Bytes()[:gz.Len()/2]
	for _, bad := range []struct {
		data []byte
		sha  string
	}{{gz.Bytes(), wrongHash}, {truncated, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}} {
		it, err := ans104.Sign(aw, bad.data, ans104.Options{Tags: badTags(bad.sha)})
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.Upload(context.Background(), it.Bytes()); err != nil {
			t.Fatal(err)
		}
	}

	b, bURL := n.newCU(Config{CheckpointOwners: []string{a.Address()}}, false)
	rb := result(t, bURL, pid, m5)
	if rb.data() != "61" {
		t.Fatalf("B: N + 1 = %q", rb.data())
	}
	if got, want := b.metrics.arweaveRestores.Load(), int64(1); got != want {
		t.Fatalf("B restored %d published checkpoints", got)
	}
	if got := b.metrics.arweaveRejected.Load(); got != 2 {
		t.Fatalf("B rejected %d candidates, want 2", got)
	}
	if got := b.metrics.coldStarts.Load(); got != 0 {
		t.Fatalf("B cold-started %d times", got)
	}
	if got := evaluatedCount(b); got != 2 {
		t.Fatalf("B evaluated %d messages, want 2 (m4, m5)", got)
	}
	ra := result(t, aURL, pid, m5)
	if ra.data() != rb.data() || string(ra.Output) != string(rb.Output) {
		t.Fatalf("A %s vs B %s", ra.Output, rb.Output)
	}
	if r4a, r4b := result(t, aURL, pid, m4), result(t, bURL, pid, m4); string(r4a.Output) != string(r4b.Output) {
		t.Fatalf("m4: A %s vs B %s", r4a.Output, r4b.Output)
	}
	if ha, hb := stateHash(t, aURL, pid), stateHash(t, bURL, pid); ha != hb {
		t.Fatalf("memory: A %s vs B %s", ha, hb)
	}
	// B has no result for m2 (before its restore point): it evaluates the
	// past on the side, from A's checkpoint after m1, and its live state
	// stays where it was.
	before := stateHash(t, bURL, pid)
	if r2a, r2b := result(t, aURL, pid, ms[1]), result(t, bURL, pid, ms[1]); string(r2a.Output) != string(r2b.Output) || r2b.data() != "3" {
		t.Fatalf("m2: A %s vs B %s", r2a.Output, r2b.Output)
	}
	if got := b.metrics.arweaveRestores.Load(); got != 2 {
		t.Fatalf("side evaluation: %d restores from published checkpoints", got)
	}
	if after := stateHash(t, bURL, pid); after != before {
		t.Fatalf("B's live state moved: %s -> %s", before, after)
	}

	// Ignoring published checkpoints (or trusting nobody) replays from
	// the start, with the same outcome.
	for _, cfg := range []Config{{CheckpointOwners: []string{a.Address()}, IgnoreArweaveCheckpoints: true}, {}} {
		c, cURL := n.newCU(cfg, false)
		if rc := result(t, cURL, pid, m5); string(rc.Output) != string(ra.Output) {
			t.Fatalf("C: %s", rc.Output)
		}
		if c.metrics.arweaveRestores.Load() != 0 || c.metrics.coldStarts.Load() != 1 || evaluatedCount(c) != 6 {
			t.Fatalf("C: %d restores, %d cold starts, %d evaluated", c.metrics.arweaveRestores.Load(), c.metrics.coldStarts.Load(), evaluatedCount(c))
		}
	}
	var e struct{ Error string }
	if code := getJSON(t, bURL+"/result/"+m5, &e); code != http.StatusBadRequest || e.Error == "" {
		t.Fatalf("no process-id: %d %q", code, e.Error)
	}
}
