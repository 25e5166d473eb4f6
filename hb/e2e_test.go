package hb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/node"
	"github.com/aonode/aonode/wallet"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNode starts a whole node with its AO-Core surface on loopback.
func startNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.BlockInterval = 100 * time.Millisecond
	var n *node.Node
	var err error
	// A free port can be taken by a parallel test before Start binds it
	// (node's own startNode retries likewise).
	for attempt := 0; attempt < 5; attempt++ {
		cfg.GatewayPort, cfg.SUPort, cfg.CUPort, cfg.MUPort, cfg.HBPort = freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
		n, err = node.Start(context.Background(), cfg)
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

// TestAoconnectMainnet drives `aonode run`'s AO-Core surface with the
// unmodified @permaweb/aoconnect@0.0.98 in MODE 'mainnet' (interop/mainnet.mjs):
// request() for the node info, spawn, message + result by slot and by id,
// results, getLastSlot/getMessageById/getMessages, dryrun, ping-pong with a process naming the public mainnet
// scheduler (as aos does), and patch@1.0 state; with aos 2.0.4 (wasm32) and
// aos 2.0.6 (memory64).
func TestAoconnectMainnet(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	for _, m := range []struct{ file, format string }{
		{"aos2_0_4_32.wasm", "wasm32-unknown-emscripten4"},
		{"aos2_0_6.wasm", "wasm64-unknown-emscripten-draft_2024_02_15"},
	} {
		t.Run(m.file, func(t *testing.T) { mainnetScenario(t, m.file, m.format) })
	}
}

func mainnetScenario(t *testing.T, file, format string) {
	dir := interop.Dir(t)
	wasm := interop.WaoModulePath(t, file)
	n := startNode(t, node.Config{})
	w, err := wallet.Generate(wallet.Arweave)
	if err != nil {
		t.Fatal(err)
	}
	jwk := filepath.Join(t.TempDir(), "wallet.json")
	if err := w.Save(jwk); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "mainnet.mjs"), jwk, wasm)
	cmd.Dir = dir
	var env []string
	for _, e := range os.Environ() {
		// aoconnect's spawn prefers these to its arguments.
		if !strings.HasPrefix(e, "MODULE=") && !strings.HasPrefix(e, "AUTHORITY=") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, "HB_URL="+n.HBURL, "GATEWAY_URL="+n.GatewayURL, "GRAPHQL_URL="+n.GatewayURL+"/graphql", "MODULE_FORMAT="+format)
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
		t.Fatalf("mainnet.mjs: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	for _, s := range []string{"info", "publish", "spawn", "message", "result-by-id", "results", "legacy-reads", "dryrun", "pingpong", "patch"} {
		if !steps[s] {
			t.Errorf("step %s did not pass", s)
		}
	}
}
