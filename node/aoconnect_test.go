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
// legacy mode (interop/aoconnect.js): publish aos, spawn, Eval return 1+1,
// ping-pong between two processes, a spawned child, dry-run, results paging,
// cron through monitor, and assign; with aos 2.0.4 (wasm32) and aos 2.0.6
// (memory64, lowered to memory32 at load).
func TestAoconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	for _, m := range []struct{ file, format string }{
		{"aos2_0_4_32.wasm", "wasm32-unknown-emscripten4"},
		{"aos2_0_6.wasm", "wasm64-unknown-emscripten-draft_2024_02_15"},
	} {
		t.Run(m.file, func(t *testing.T) { aoconnectScenario(t, m.file, m.format) })
	}
}

func aoconnectScenario(t *testing.T, file, format string) {
	dir := interop.Dir(t)
	wasm := interop.WaoModulePath(t, file)
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
	cmd.Env = append(os.Environ(), "MU_URL="+n.MUURL, "CU_URL="+n.CUURL, "GATEWAY_URL="+n.GatewayURL, "MODULE_FORMAT="+format)
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
