package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/wallet"
)

// TestHelpGoesToStdout: --help is an answer (stdout, status 0), not an error.
func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"spawn", "--help"}, {"wallet", "--help"}, {"help", "eval"}, {"run", "-h"}} {
		out, errs, code := run(t, args...)
		if code != 0 || errs != "" || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: status %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	// A mistake gets one line on stderr, not the whole help.
	out, errs, code := run(t, "spawn", "--bogus")
	if code != 2 || out != "" || strings.Contains(errs, "Flags:") || !strings.Contains(errs, "see 'aonode spawn --help'") {
		t.Errorf("bad flag: status %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestHelpListsOnlyUsedFlags: each flag says its default once, and the client
// commands list only the unit URLs they use.
func TestHelpListsOnlyUsedFlags(t *testing.T) {
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		for _, s := range c.subs {
			walk(s, append(path, s.name))
		}
		if c.flags == nil {
			return
		}
		out, _, code := run(t, append(append([]string(nil), path...), "--help")...)
		if code != 0 {
			t.Errorf("%v --help: status %d", path, code)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Count(line, "(default") > 1 {
				t.Errorf("%v: two defaults in %q", path, line)
			}
		}
	}
	walk(root, nil)

	for cmd, want := range map[string][]string{
		"result":         {"--cu-url"},
		"module publish": {"--wallet", "--gateway-url"},
		"spawn":          {"--wallet", "--gateway-url", "--mu-url", "--su-url"},
		"send":           {"--wallet", "--mu-url", "--cu-url"},
		"eval":           {"--wallet", "--mu-url", "--cu-url"},
		"repl":           {"--wallet", "--mu-url", "--cu-url"},
	} {
		out, _, _ := run(t, append(strings.Fields(cmd), "--help")...)
		for _, f := range []string{"--wallet", "--gateway-url", "--mu-url", "--cu-url", "--su-url"} {
			listed := strings.Contains(out, "  "+f+" ")
			if wanted := strings.Contains(strings.Join(want, " "), f); listed != wanted {
				t.Errorf("%s --help lists %s: %v, want %v", cmd, f, listed, wanted)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, errs, code := run(t, args...)
		// Test binaries carry build information too, without vcs stamps.
		// The wasm engines, the default first: wazero is in every build.
		engines := "\nwasm engines: " + strings.Join(wasm.Engines(), ", ") + " (default " + wasm.DefaultEngine() + ")\n"
		if code != 0 || !strings.HasPrefix(out, "aonode ") || !strings.Contains(out, "\ncommit ") || !strings.Contains(out, "go1.") ||
			!strings.Contains(out, engines) || !strings.Contains(out, "wazero") {
			t.Errorf("%v: status %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// TestArgumentMistakes: an empty shell variable shifts the words after a
// flag; the errors say what happened and what to do.
func TestArgumentMistakes(t *testing.T) {
	key := filepath.Join(t.TempDir(), "me.json")
	w, _ := wallet.Generate(wallet.Ed25519)
	w.Save(key)
	pid := strings.Repeat("A", 43)
	for _, tc := range []struct {
		args []string
		want string
	}{
		// M= ; aonode spawn --module $M --name alpha
		{[]string{"spawn", "--module", "--name", "alpha"}, `--module "--name" is not a module id`},
		{[]string{"spawn", "--name", "alpha"}, "--module is required"},
		{[]string{"spawn", "--module", "nope", "--name", "alpha"}, "variable is probably empty"},
		// A= ; aonode eval --process $A 'return 1'
		{[]string{"eval", "--process", "return 1"}, `--process "return 1" is not a process id`},
		{[]string{"repl", "--process", "x"}, "is not a process id"},
		{[]string{"send", "--process", pid, "extra"}, `unexpected argument "extra"`},
	} {
		_, errs, code := run(t, append(tc.args, "--wallet", key)...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: status %d, stderr %q, want %q", tc.args, code, errs, tc.want)
		}
	}
}

// TestUnreachableNode: a client command against a node that is not running
// says so and how to start it.
func TestUnreachableNode(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	key := filepath.Join(t.TempDir(), "me.json")
	w, _ := wallet.Generate(wallet.Ed25519)
	w.Save(key)
	pid := strings.Repeat("A", 43)
	for _, args := range [][]string{
		{"eval", "--process", pid, "--mu-url", dead, "return 1"},
		{"spawn", "--module", pid, "--gateway-url", dead},
		{"result", "--process", pid, "--cu-url", dead, pid},
		{"repl", "--process", pid, "--cu-url", dead, "--mu-url", dead},
	} {
		if args[0] != "result" {
			args = append(args, "--wallet", key)
		}
		_, errs, code := run(t, args...)
		if code != 1 || !strings.Contains(errs, "is the node running? Start it with 'aonode run'") || !strings.Contains(errs, dead) ||
			!strings.Contains(errs, "connection refused") ||
			strings.Contains(errs, "--scheduler") {
			t.Errorf("%v: status %d, stderr %q", args[0], code, errs)
		}
	}
}

// TestSpawnChecksModule: spawn asks the gateway first and refuses an id that
// is not a Module, before anything is signed or sent.
func TestSpawnChecksModule(t *testing.T) {
	var other atomic.Int32
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/graphql" {
			other.Add(1)
			http.NotFound(w, r)
			return
		}
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		if strings.Contains(b.String(), strings.Repeat("P", 42)+"A") {
			w.Write([]byte(`{"data":{"transaction":{"id":"x","tags":[{"name":"Type","value":"Process"}]}}}`))
			return
		}
		w.Write([]byte(`{"data":{"transaction":null}}`))
	}))
	defer gw.Close()
	key := filepath.Join(t.TempDir(), "me.json")
	w, _ := wallet.Generate(wallet.Ed25519)
	w.Save(key)
	for id, want := range map[string]string{strings.Repeat("M", 43): "has no item with this id", strings.Repeat("P", 42) + "A": "it is a Process item"} {
		_, errs, code := run(t, "spawn", "--module", id, "--gateway-url", gw.URL, "--mu-url", gw.URL, "--su-url", gw.URL, "--wallet", key)
		if code != 1 || !strings.Contains(errs, "is not a module on this network") || !strings.Contains(errs, want) ||
			!strings.Contains(errs, "aonode module publish") {
			t.Errorf("module %s: status %d, stderr %q", id, code, errs)
		}
	}
	if other.Load() != 0 {
		t.Errorf("spawn went on past a bad module: %d other requests", other.Load())
	}
}

// TestSUBusyPort: an SU whose port is taken fails before it publishes a
// Scheduler-Location record naming that port.
func TestSUBusyPort(t *testing.T) {
	var uploads atomic.Int32
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			uploads.Add(1)
		}
		w.Write([]byte(`{"height":0,"current":"x"}`))
	}))
	defer gw.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	w, _ := wallet.Generate(wallet.Ed25519)
	w.Save(filepath.Join(dir, "su.json"))
	_, errs, code := run(t, "su", "--port", itoa(port), "--host", "127.0.0.1", "--data", dir, "--wallet", filepath.Join(dir, "su.json"),
		"--gateway-url", gw.URL)
	if code == 0 || !strings.Contains(errs, "address already in use") || !strings.Contains(errs, "fix: ") {
		t.Fatalf("status %d, stderr %q", code, errs)
	}
	if n := uploads.Load(); n != 0 {
		t.Fatalf("the SU uploaded %d items (its Scheduler-Location) before failing to listen", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestPlainWriter: escape sequences are dropped, also split across writes.
func TestPlainWriter(t *testing.T) {
	var b bytes.Buffer
	p := &plainWriter{w: &b}
	for _, s := range []string{"\x1b[32mgre", "en\x1b[0m ", "\x1b", "[1;3", "1mred\x1b[", "0m \x1b]0;title\x07ok\x1b]8;;x\x1b\\!"} {
		p.Write([]byte(s))
	}
	if b.String() != "green red ok!" {
		t.Fatalf("got %q", b.String())
	}
	t.Setenv("NO_COLOR", "1")
	if _, ok := plainUnlessColor(&bytes.Buffer{}).(*plainWriter); !ok {
		t.Fatal("a buffer gets colour")
	}
}

// TestReplInboxCheckBypassesCache: the CU caches dry-runs by body for 60 s,
// so two Inbox checks must never send the same body, or the repl's prompt and
// its "New message" notices lag by up to a minute.
func TestReplInboxCheckBypassesCache(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/dry-run":
			var b bytes.Buffer
			b.ReadFrom(r.Body)
			bodies = append(bodies, b.String())
			w.Write([]byte(`{"Output":{"data":"{\"n\":0,\"m\":[]}","prompt":"p> "}}`))
		case r.Method == http.MethodPost && r.URL.Path == "/":
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"message":"Processing DataItem","id":"x"}`))
		case strings.HasPrefix(r.URL.Path, "/result/"):
			w.Write([]byte(`{"Output":{"data":"1","prompt":"p> "}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	w, _ := wallet.Generate(wallet.Ed25519)
	c := client.New(w)
	c.MU, c.CU = srv.URL, srv.URL
	var out bytes.Buffer
	stdout, stderr = &out, &out
	defer func() { stdout, stderr = os.Stdout, os.Stderr }()
	if err := repl(context.Background(), c, strings.Repeat("A", 43), strings.NewReader("return 1\nreturn 1\n")); err != nil {
		t.Fatal(err)
	}
	if len(bodies) < 3 {
		t.Fatalf("%d Inbox checks, want 3 (one before the first line and one after each); output %q", len(bodies), out.String())
	}
	for i := range bodies {
		for j := range i {
			if bodies[i] == bodies[j] {
				t.Fatalf("Inbox checks %d and %d sent the same body, which the CU answers from its cache:\n%s", j, i, bodies[i])
			}
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the repl's Inbox poller.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestReplShowsMessagesWhileIdle: a message that arrives while the repl
// waits for a line is shown within seconds, not at the next line.
func TestReplShowsMessagesWhileIdle(t *testing.T) {
	var checks atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/dry-run" {
			if checks.Add(1) < 3 {
				w.Write([]byte(`{"Output":{"data":"{\"n\":0,\"m\":[]}","prompt":"p> "}}`))
				return
			}
			w.Write([]byte(`{"Output":{"data":"{\"n\":1,\"m\":[{\"From\":\"PEER\",\"Action\":\"Ping\",\"Data\":\"hi\"}]}","prompt":"p> "}}`))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	w, _ := wallet.Generate(wallet.Ed25519)
	c := client.New(w)
	c.MU, c.CU = srv.URL, srv.URL
	out := &lockedBuffer{}
	stdout, stderr = out, out
	defer func() { stdout, stderr = os.Stdout, os.Stderr }()
	in, typed := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- repl(context.Background(), c, strings.Repeat("A", 43), in) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "New message from PEER: Action = Ping, Data = hi") {
		if time.Now().After(deadline) {
			t.Fatalf("no notice while idle; output %q", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	typed.Write([]byte(".exit\n"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCUBusyPort: a CU whose port is taken fails before it creates its
// stores.
func TestCUBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	keyDir, data := t.TempDir(), filepath.Join(t.TempDir(), "cu")
	w, _ := wallet.Generate(wallet.Ed25519)
	w.Save(filepath.Join(keyDir, "cu.json"))
	_, errs, code := run(t, "cu", "--port", strconv.Itoa(busy.Addr().(*net.TCPAddr).Port), "--host", "127.0.0.1", "--data", data,
		"--wallet", filepath.Join(keyDir, "cu.json"), "--gateway-url", "http://127.0.0.1:1")
	if code == 0 || !strings.Contains(errs, "address already in use") {
		t.Fatalf("status %d, stderr %q", code, errs)
	}
	if entries, _ := os.ReadDir(data); len(entries) > 0 {
		t.Fatalf("the CU created %d entries in %s before failing to listen", len(entries), data)
	}
}
