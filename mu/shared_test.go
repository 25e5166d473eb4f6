package mu

import (
	"bufio"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/pgtest"
)

// sharedDepth is the shared queue's pending tasks, read through a fresh
// store on the same database.
func sharedDepth(t testing.TB, dsn string) int64 {
	t.Helper()
	st, err := openStore(context.Background(), "", dsn, "probe", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	n, err := st.depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkFan checks that every one of total fan-out messages reached its target
// exactly once, in outbox order per target.
func checkFan(t *testing.T, e *env, fan string, targets []string, total int) {
	t.Helper()
	seen := map[string]int{}
	for ti, p := range targets {
		last := -1
		for _, m := range e.messagesTo(p) {
			n, _ := strconv.Atoi(m.tag("N"))
			seen[m.tag("N")]++
			if n%len(targets) != ti {
				t.Fatalf("message N=%d reached target %d", n, ti)
			}
			if n <= last {
				t.Fatalf("target %d: N=%d after N=%d (not in outbox order)", ti, n, last)
			}
			last = n
			if m.tag("From-Process") != fan {
				t.Fatalf("message N=%d: From-Process %s", n, m.tag("From-Process"))
			}
		}
	}
	for i := range total {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Fatalf("message N=%d delivered %d times, want exactly once (%d distinct seen)", i, c, len(seen))
		}
	}
}

func fanScript(e *env, fan string, targets []string, total int) {
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if pid != fan || m.tag("Action") != "Fan" {
			return nil
		}
		ms := make([]any, 0, total)
		for i := range total {
			ms = append(ms, outMsg(targets[i%len(targets)], strconv.Itoa(i+1), tg("N", strconv.Itoa(i))...))
		}
		return map[string]any{"Messages": ms}
	}
}

// TestSharedQueue runs two in-process MUs on one PostgreSQL queue: items
// posted to either are scheduled, and a fan-out's messages are delivered
// exactly once, in order, whichever MU runs them.
func TestSharedQueue(t *testing.T) {
	dsn := pgtest.Schema(t, "mu_shared")
	e := newNet(t)
	e.muW = genWallet(t, "ed25519")
	mod := func(c *Config) {
		c.Database = dsn
		c.LeaseTTL = 2 * time.Second
		c.PollInterval = 50 * time.Millisecond
	}
	e.muDir = t.TempDir()
	e.startMU(mod)
	first, firstURL := e.mu, e.muURL
	e.muDir = t.TempDir()
	e.startMU(mod) // the second MU; e.mu and e.muURL now point at it
	second := e.mu

	const total = 200
	fan := e.spawn("fan") // through the second
	var targets []string
	for i := range 4 {
		targets = append(targets, e.spawn("t"+strconv.Itoa(i)))
	}
	fanScript(e, fan, targets, total)
	e.muURL = firstURL
	e.send(fan, tg("Action", "Fan")...) // through the first
	eventually(t, "the fan-out delivered", func() bool {
		n := 0
		for _, p := range targets {
			n += len(e.messagesTo(p))
		}
		return n >= total && sharedDepth(t, dsn) == 0
	})
	checkFan(t, e, fan, targets, total)
	for _, m := range []*Server{first, second} {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if !strings.Contains(rec.Body.String(), "mu_queue_depth 0") {
			t.Errorf("metrics lack mu_queue_depth 0:\n%s", rec.Body.String())
		}
	}
}

// TestSharedQueueMUDies kills (SIGKILL) one of two MU processes sharing a
// PostgreSQL queue in the middle of a fan-out of 600 messages it runs; the
// other claims its queues when their leases expire and completes them, each
// message delivered exactly once (RSA wallet: a re-signed item would get a
// new id, so a duplicate would show).
func TestSharedQueueMUDies(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	dsn := pgtest.Schema(t, "mu_shared_kill")
	const total, ntargets = 600, 6
	e := newNet(t)
	e.muW = testRSAWallet(t)
	dir := t.TempDir()
	wf := filepath.Join(dir, "mu-wallet.json")
	if err := e.muW.Save(wf); err != nil {
		t.Fatal(err)
	}
	start := func(name string) (*exec.Cmd, string) {
		t.Helper()
		c := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		c.Env = append(os.Environ(), "MU_CRASH_CHILD=1", "MU_WALLET="+wf, "MU_DATA="+filepath.Join(dir, name),
			"MU_GATEWAY="+e.gwURL, "MU_CU="+e.cuURL, "MU_DATABASE="+dsn)
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				go io.Copy(io.Discard, out)
				return c, u
			}
		}
		t.Fatal("child MU did not start")
		return nil, ""
	}
	a, aURL := start("a")
	_, bURL := start("b")
	e.muURL = aURL
	fan := e.spawn("fan")
	var targets []string
	for i := range ntargets {
		targets = append(targets, e.spawn("t"+strconv.Itoa(i)))
	}
	fanScript(e, fan, targets, total)
	e.send(fan, tg("Action", "Fan")...)
	delivered := func() int {
		n := 0
		for _, p := range targets {
			n += len(e.messagesTo(p))
		}
		return n
	}
	eventually(t, "some deliveries before the kill", func() bool { return delivered() >= 60 })
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	before := delivered()
	t.Logf("killed MU a after %d of %d deliveries", before, total)
	if before >= total {
		t.Fatal("the fan-out finished before the kill; nothing tested")
	}
	e.muURL = bURL // the survivor still takes new items meanwhile
	extra := e.spawn("late")
	deadline := time.Now().Add(3 * time.Minute)
	for (delivered() < total || sharedDepth(t, dsn) > 0) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	checkFan(t, e, fan, targets, total)
	if len(e.schedule(extra)) == 0 {
		t.Fatal("the process spawned through the survivor was not scheduled")
	}
}
