package mu

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/wallet"
)

// TestCrashChild is the MU process of TestCrashFanOut (it only runs as a child).
func TestCrashChild(t *testing.T) {
	if os.Getenv("MU_CRASH_CHILD") == "" {
		t.Skip("child process of TestCrashFanOut")
	}
	w, err := wallet.Load(os.Getenv("MU_WALLET"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(context.Background(), Config{Signer: w, DataDir: os.Getenv("MU_DATA"), GatewayURL: os.Getenv("MU_GATEWAY"),
		CUURL: os.Getenv("MU_CU"), RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond,
		Database: os.Getenv("MU_DATABASE"), LeaseTTL: time.Second, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("LISTENING http://" + ln.Addr().String() + "\n")
	http.Serve(ln, m.Handler()) // until SIGKILL
}

// TestCrashFanOut kills the MU with SIGKILL in the middle of a fan-out of
// 1,000 outbox messages (RSA MU wallet, so a re-signed item would get a new
// id), restarts it on the same data, and checks that every message reached
// its target exactly once, in outbox order per target.
func TestCrashFanOut(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const total, ntargets = 1000, 10
	e := newNet(t)
	e.muW = testRSAWallet(t)
	dir := t.TempDir()
	wf := filepath.Join(dir, "mu-wallet.json")
	if err := e.muW.Save(wf); err != nil {
		t.Fatal(err)
	}
	var child *exec.Cmd
	start := func() {
		t.Helper()
		child = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		child.Env = append(os.Environ(), "MU_CRASH_CHILD=1", "MU_WALLET="+wf, "MU_DATA="+filepath.Join(dir, "data"),
			"MU_GATEWAY="+e.gwURL, "MU_CU="+e.cuURL)
		out, err := child.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				e.muURL = u
				go io.Copy(io.Discard, out)
				return
			}
		}
		t.Fatal("child MU did not start")
	}
	t.Cleanup(func() {
		if child != nil && child.Process != nil {
			child.Process.Kill()
			child.Wait()
		}
	})
	start()
	fan := e.spawn("fan")
	var targets []string
	for i := range ntargets {
		targets = append(targets, e.spawn("t"+strconv.Itoa(i)))
	}
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if pid != fan || m.tag("Action") != "Fan" {
			return nil
		}
		ms := make([]any, 0, total)
		for i := range total {
			ms = append(ms, outMsg(targets[i%ntargets], strconv.Itoa(i+1), tg("N", strconv.Itoa(i))...))
		}
		return map[string]any{"Messages": ms}
	}
	e.send(fan, tg("Action", "Fan")...)
	delivered := func() int {
		n := 0
		for _, p := range targets {
			n += len(e.messagesTo(p))
		}
		return n
	}
	eventually(t, "some deliveries before the kill", func() bool { return delivered() >= 150 })
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	before := delivered()
	t.Logf("killed the MU after %d of %d deliveries", before, total)
	if before >= total {
		t.Fatal("the fan-out finished before the kill; nothing tested")
	}
	start()
	deadline := time.Now().Add(3 * time.Minute)
	for delivered() < total && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	// Let anything left settle, then check exact counts.
	time.Sleep(time.Second)
	seen := map[string]int{}
	for ti, p := range targets {
		ms := e.messagesTo(p)
		last := -1
		for _, m := range ms {
			n, _ := strconv.Atoi(m.tag("N"))
			seen[m.tag("N")]++
			if n%ntargets != ti {
				t.Fatalf("message N=%d reached target %d", n, ti)
			}
			if n <= last {
				t.Fatalf("target %d: N=%d after N=%d (not in outbox order)", ti, n, last)
			}
			last = n
			if m.Message.Owner.Address != e.muW.Address() || m.tag("From-Process") != fan {
				t.Fatalf("message N=%d: owner %s From-Process %s", n, m.Message.Owner.Address, m.tag("From-Process"))
			}
		}
	}
	for i := range total {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Fatalf("message N=%d delivered %d times, want exactly once (%d distinct seen)", i, c, len(seen))
		}
	}
	if len(seen) != total {
		t.Fatalf("%d distinct messages, want %d", len(seen), total)
	}
}
