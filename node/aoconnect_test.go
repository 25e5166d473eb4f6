package node

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/wallet"
)

// TestAoconnect drives a node with the unmodified @permaweb/aoconnect@0.0.98 in
// legacy mode (interop/aoconnect.js): publish aos 2.0.4, spawn, Eval return 1+1,
// ping-pong between two processes, a spawned child, dry-run, results paging,
// cron through monitor, and assign.
func TestAoconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := interop.Dir(t)
	wasm := interop.WaoModulePath(t, "aos2_0_4_32.wasm")
	n := startNode(t)
	w, err := wallet.Generate(wallet.Arweave)
	if err != nil {
		t.Fatal(err)
	}
	jwk := filepath.Join(t.TempDir(), "wallet.json")
	if err := w.Save(jwk); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "aoconnect.js"), jwk, wasm, n.MUAddress, n.SUAddress)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MU_URL="+n.MUURL, "CU_URL="+n.CUURL, "GATEWAY_URL="+n.GatewayURL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	steps := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var s struct {
			Step  string `json:"step"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &s) != nil {
			continue
		}
		t.Logf("%s ok=%v %s", s.Step, s.OK, s.Error)
		steps[s.Step] = s.OK
	}
	if err != nil {
		t.Fatalf("aoconnect.js: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	for _, s := range []string{"publish", "spawn", "eval", "pingpong", "spawnchild", "dryrun", "results", "cron", "assign"} {
		if !steps[s] {
			t.Errorf("step %s did not pass", s)
		}
	}
}
