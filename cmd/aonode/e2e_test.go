package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/wallet"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// readmeBuild is the build command the README gives: the first line of the
// README that builds ./aonode with go build, up to "&&".
func readmeBuild(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(readme), "\n") {
		if i := strings.Index(line, "go build -o aonode ./cmd/aonode"); i >= 0 {
			cmd, _, _ := strings.Cut(line, "&&")
			return strings.Fields(cmd)
		}
	}
	t.Fatal("README.md gives no 'go build -o aonode ./cmd/aonode' command")
	return nil
}

// buildBinary builds the binary once per test run with the README's command,
// its output redirected into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	words := readmeBuild(t)
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "aonode-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "aonode")
		var env []string
		for len(words) > 0 && strings.Contains(words[0], "=") {
			env, words = append(env, words[0]), words[1:]
		}
		if len(words) < 2 || words[0] != "go" {
			binErr = fmt.Errorf("README build command %q does not run go", words)
			return
		}
		args := append([]string(nil), words[1:]...)
		for i := range args {
			if args[i] == "-o" && i+1 < len(args) {
				args[i+1] = binPath
			}
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("%s: %v\n%s", strings.Join(words, " "), err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestREADMEBuildIsStatic: the README's build command gives the one static
// binary it promises: built without cgo, no dynamic section, no interpreter.
func TestREADMEBuildIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if !strings.HasPrefix(strings.Join(readmeBuild(t), " "), "CGO_ENABLED=0 ") {
		t.Fatalf("the README builds with %q, which links against libc when gcc is present", readmeBuild(t))
	}
	bin := buildBinary(t)
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CGO_ENABLED=0") {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Skipf("not an ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC || p.Type == elf.PT_INTERP {
			t.Fatalf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs %v", libs)
	}
	// aonode version says the same, with the commit the go command stamped
	// (none under GOFLAGS=-buildvcs=false).
	v, err := exec.Command(bin, "--version").Output()
	commit := "commit unknown"
	if m := regexp.MustCompile(`vcs.revision=([0-9a-f]+)`).FindSubmatch(out); m != nil {
		commit = "commit " + string(m[1])
	}
	if err != nil || !strings.Contains(string(v), "CGO_ENABLED=0") || !strings.Contains(string(v), "\n"+commit) {
		t.Fatalf("aonode --version: %v, want %q\n%s", err, commit, v)
	}
}

// TestRunStartupFailures: `aonode run` on each broken input exits non-zero
// with the file and the fix, and without a panic.
func TestRunStartupFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	wallets := func(t *testing.T, dir string) {
		for _, u := range []string{"su", "cu", "mu"} {
			w, _ := wallet.Generate(wallet.Ed25519)
			if err := w.Save(filepath.Join(dir, "wallets", u+".json")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string
		want  string
	}{
		{"empty wallet", func(t *testing.T, dir string) string {
			wallets(t, dir)
			os.WriteFile(filepath.Join(dir, "wallets", "cu.json"), nil, 0o600)
			return dir
		}, "DIR/wallets/cu.json"},
		{"corrupt wallet", func(t *testing.T, dir string) string {
			wallets(t, dir)
			os.WriteFile(filepath.Join(dir, "wallets", "su.json"), []byte("{garbage"), 0o600)
			return dir
		}, "DIR/wallets/su.json"},
		{"corrupt store", func(t *testing.T, dir string) string {
			wallets(t, dir)
			os.MkdirAll(filepath.Join(dir, "gateway"), 0o700)
			os.WriteFile(filepath.Join(dir, "gateway", "store.db"), bytes.Repeat([]byte("garbage!"), 2048), 0o600)
			return dir
		}, "DIR/gateway/store.db"},
		{"data is a file", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
			return filepath.Join(dir, "f")
		}, "DIR is a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.setup(t, t.TempDir())
			var err error
			var msg string
			// A free port may be taken by another test before the node
			// binds it: then try other ports.
			for attempt := 0; attempt < 5; attempt++ {
				cmd := exec.Command(bin, "run", "--data", data, "--gateway-port", fmt.Sprint(freePort(t)), "--mu-port", fmt.Sprint(freePort(t)),
					"--su-port", fmt.Sprint(freePort(t)), "--cu-port", fmt.Sprint(freePort(t)), "--hb-port", fmt.Sprint(freePort(t)), "--explorer-port", fmt.Sprint(freePort(t)))
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err = cmd.Run()
				if msg = stderr.String(); !strings.Contains(msg, "address already in use") {
					break
				}
			}
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 || strings.Contains(msg, "panic") || !strings.Contains(msg, strings.ReplaceAll(tc.want, "DIR", data)) ||
				!strings.Contains(msg, "fix: ") {
				t.Fatalf("exit %v, stderr:\n%s", err, msg)
			}
		})
	}
}

// runNode starts `aonode run` on free ports and returns the environment for
// client commands and the MU address from the banner.
func runNode(t *testing.T, bin string) ([]string, string) {
	t.Helper()
	dir := t.TempDir()
	ports := map[string]int{"gateway": freePort(t), "mu": freePort(t), "su": freePort(t), "cu": freePort(t)}
	run := exec.Command(bin, "run", "--data", filepath.Join(dir, "node"), "--gateway-port", fmt.Sprint(ports["gateway"]),
		"--mu-port", fmt.Sprint(ports["mu"]), "--su-port", fmt.Sprint(ports["su"]), "--cu-port", fmt.Sprint(ports["cu"]),
		"--hb-port", fmt.Sprint(freePort(t)), "--explorer-port", fmt.Sprint(freePort(t)))
	stdout, _ := run.StdoutPipe()
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		run.Process.Signal(os.Interrupt)
		run.Wait()
	})
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
	key := filepath.Join(dir, "me.json")
	w, _ := wallet.Generate(wallet.Ed25519)
	if err := w.Save(key); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		fmt.Sprintf("GATEWAY_URL=http://127.0.0.1:%d", ports["gateway"]), fmt.Sprintf("MU_URL=http://127.0.0.1:%d", ports["mu"]),
		fmt.Sprintf("SU_URL=http://127.0.0.1:%d", ports["su"]), fmt.Sprintf("CU_URL=http://127.0.0.1:%d", ports["cu"]),
		"AONODE_WALLET="+key)
	return env, muAddr
}

// cliRunner runs the binary with env and returns stdout, stderr and the exit status.
func cliRunner(bin string, env []string) func(stdin string, args ...string) (string, string, int) {
	return func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		return strings.TrimSpace(out.String()), errb.String(), code
	}
}

// TestCLIAgainstRun builds the binary, starts `aonode run` and uses the client
// commands as a person would: publish aos, spawn two processes, eval, send
// between them, read a result, and type into the repl; then the README's Quick
// start 20 times, and the mistakes a newcomer makes.
func TestCLIAgainstRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModulePath(t, "aos2_0_4_32.wasm")
	bin := buildBinary(t)
	env, muAddr := runNode(t, bin)
	try := cliRunner(bin, env)
	cli := func(stdin string, args ...string) string {
		t.Helper()
		out, errs, code := try(stdin, args...)
		if code != 0 {
			t.Fatalf("aonode %s: status %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	module := cli("", "module", "publish", wasm)
	alpha := cli("", "spawn", "--module", module, "--name", "alpha")
	beta := cli("", "spawn", "--module", module, "--name", "beta")
	if len(alpha) != 43 || len(beta) != 43 {
		t.Fatalf("spawn printed %q and %q", alpha, beta)
	}

	t.Run("basics", func(t *testing.T) {
		if got := cli("", "eval", "--process", alpha, "return 1+1"); got != "2" {
			t.Fatalf("eval: %q", got)
		}
		if got := cli("", "eval", "--process", beta, `return ao.authorities[1]`); got != muAddr {
			t.Fatalf("spawn did not add the MU %s as Authority: %q", muAddr, got)
		}
		cli("", "eval", "--process", beta, `Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (msg) msg.reply({ Action = "Pong", Data = "pong: " .. msg.Data }) end)`)
		out := cli("", "send", "--process", beta, "--action", "Ping", "--data", "from the cli", "--wait")
		lines := strings.SplitN(out, "\n", 2)
		var res map[string]any
		if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &res) != nil || len(lines[0]) != 43 {
			t.Fatalf("send --wait printed %q", out)
		}
		if r := cli("", "result", "--process", beta, lines[0]); !strings.Contains(r, `"Messages"`) {
			t.Fatalf("result: %s", r)
		}
		// The repl's output goes to a pipe: no colour codes.
		repl := cli("X = 6 * 7\nreturn X\n.exit\n", "repl", "--process", alpha)
		if strings.Contains(repl, "\x1b") || !strings.Contains(repl, "> 42\n") || !strings.HasPrefix(repl, "alpha@aos-2.0.4[Inbox:") {
			t.Fatalf("repl printed %q", repl)
		}
	})

	// The Quick start's last steps, as the README gives them: after
	// eval --wait, the Pong is in the Inbox every time.
	t.Run("quick start", func(t *testing.T) {
		cli("", "eval", "--process", beta, `Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (msg) msg.reply({ Action = "Pong", Data = "pong: " .. msg.Data }) end)`)
		for i := range 20 {
			data := fmt.Sprintf("hello %d", i)
			cli("", "eval", "--wait", "--process", alpha, fmt.Sprintf(`Send({ Target = '%s', Action = 'Ping', Data = '%s' }); return 'sent'`, beta, data))
			if got := cli("", "eval", "--process", alpha, "return Inbox[#Inbox].Data"); got != "pong: "+data {
				t.Fatalf("repetition %d: the last Inbox message is %q, want %q", i, got, "pong: "+data)
			}
		}
	})

	t.Run("mistakes", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"spawn", "--module", alpha}, "is not a module on this network"},
			{[]string{"spawn", "--module", strings.Repeat("A", 43)}, "has no item with this id"},
			{[]string{"eval", "--process", strings.Repeat("A", 43), "return 1"}, "does not exist on this network"},
			{[]string{"repl", "--process", strings.Repeat("A", 43)}, "cannot open a repl on process"},
		} {
			out, errs, code := try("", tc.args...)
			if code != 1 || !strings.Contains(errs, tc.want) || out != "" {
				t.Errorf("%v: status %d, stdout %q, stderr %q", tc.args, code, out, errs)
			}
		}
	})
}
