package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/interop"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestCLIAgainstRun builds the binary, starts `aonode run` and uses the client
// commands as a person would: publish aos, spawn two processes, eval, send
// between them, read a result, and type into the repl.
func TestCLIAgainstRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModulePath(t, "aos2_0_4_32.wasm")
	dir := t.TempDir()
	bin := filepath.Join(dir, "aonode")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ports := map[string]int{"gateway": freePort(t), "mu": freePort(t), "su": freePort(t), "cu": freePort(t)}
	run := exec.Command(bin, "run", "--data", filepath.Join(dir, "node"), "--gateway-port", fmt.Sprint(ports["gateway"]),
		"--mu-port", fmt.Sprint(ports["mu"]), "--su-port", fmt.Sprint(ports["su"]), "--cu-port", fmt.Sprint(ports["cu"]))
	stdout, _ := run.StdoutPipe()
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		run.Process.Signal(os.Interrupt)
		run.Wait()
	}()
	// Wait for the banner; it names the MU address.
	banner := bufio.NewScanner(stdout)
	var muAddr string
	deadline := time.Now().Add(60 * time.Second)
	for muAddr == "" && banner.Scan() {
		if m := regexp.MustCompile(`MU address (\S+)`).FindStringSubmatch(banner.Text()); m != nil {
			muAddr = m[1]
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if muAddr == "" {
		t.Fatalf("no banner from aonode run; stderr:\n%s", runErr.Bytes())
	}
	go func() {
		for banner.Scan() {
		}
	}()

	env := append(os.Environ(),
		fmt.Sprintf("GATEWAY_URL=http://127.0.0.1:%d", ports["gateway"]), fmt.Sprintf("MU_URL=http://127.0.0.1:%d", ports["mu"]),
		fmt.Sprintf("SU_URL=http://127.0.0.1:%d", ports["su"]), fmt.Sprintf("CU_URL=http://127.0.0.1:%d", ports["cu"]),
		"AONODE_WALLET="+filepath.Join(dir, "me.json"))
	cli := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("aonode %s: %v\n%s%s", strings.Join(args, " "), err, out, errb.Bytes())
		}
		return strings.TrimSpace(string(out))
	}
	cli("", "wallet", "new", "--type", "ed25519", "-o", filepath.Join(dir, "me.json"))
	module := cli("", "module", "publish", wasm)
	alpha := cli("", "spawn", "--module", module, "--name", "alpha")
	beta := cli("", "spawn", "--module", module, "--name", "beta")
	if len(alpha) != 43 || len(beta) != 43 {
		t.Fatalf("spawn printed %q and %q", alpha, beta)
	}
	if got := cli("", "eval", "--process", alpha, "return 1+1"); got != "2" {
		t.Fatalf("eval: %q", got)
	}
	if got := cli("", "eval", "--process", beta, `return ao.authorities[1]`); got != muAddr {
		t.Fatalf("spawn did not add the MU %s as Authority: %q", muAddr, got)
	}
	cli("", "eval", "--process", beta, `Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (msg) msg.reply({ Action = "Pong", Data = "pong " .. msg.Data }) end)`)
	cli("", "eval", "--process", alpha, `Handlers.add("pong", Handlers.utils.hasMatchingTag("Action", "Pong"), function (msg) LastPong = msg.Data end)`)
	out := cli("", "send", "--process", beta, "--action", "Ping", "--data", "from the cli", "--wait")
	lines := strings.SplitN(out, "\n", 2)
	var res map[string]any
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &res) != nil || len(lines[0]) != 43 {
		t.Fatalf("send --wait printed %q", out)
	}
	if r := cli("", "result", "--process", beta, lines[0]); !strings.Contains(r, `"Messages"`) {
		t.Fatalf("result: %s", r)
	}
	cli("", "eval", "--process", alpha, fmt.Sprintf(`Send({ Target = %q, Action = "Ping", Data = "alpha" })`, beta))
	for end := time.Now().Add(60 * time.Second); ; {
		if got := cli("", "eval", "--process", alpha, `return LastPong or ""`); got == "pong alpha" {
			break
		} else if time.Now().After(end) {
			t.Fatalf("alpha never got beta's Pong: %q", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	repl := cli("X = 6 * 7\nreturn X\n.exit\n", "repl", "--process", alpha)
	plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(repl, "")
	if !strings.Contains(plain, "> 42\n") || !strings.HasPrefix(plain, "alpha@aos-2.0.4[Inbox:") {
		t.Fatalf("repl printed %q", repl)
	}
}
