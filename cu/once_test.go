package cu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/interop"
)

// evaluations is how many messages s has evaluated (scheduled, cron and
// dry-run).
func evaluations(s *Server) int64 {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return s.metrics.messages
}

// TestResultEvaluatedOnce asks for one message's result many times at once
// and then for an old message's result: each message is evaluated once, and
// nothing is replayed.
func TestResultEvaluatedOnce(t *testing.T) {
	n := newNetwork(t)
	s, cuURL := n.newCU(Config{}, false)
	pid := n.spawn()
	var msgs []string
	for i := range 6 {
		msgs = append(msgs, n.eval(pid, fmt.Sprintf("X = %d; return X", i)))
	}
	last := msgs[len(msgs)-1]
	const askers = 8
	var wg sync.WaitGroup
	got := make([]string, askers)
	for i := range askers {
		wg.Go(func() { got[i] = result(t, cuURL, pid, last).data() })
	}
	wg.Wait()
	for i, g := range got {
		if g != "5" {
			t.Fatalf("asker %d got %q, want 5", i, g)
		}
	}
	// The process message (legacy injection aside) and the six evals.
	want := evaluations(s)
	if want > 7 {
		t.Fatalf("%d evaluations for 6 messages and a spawn (concurrent askers re-evaluated)", want)
	}
	if r := s.metrics.pastReplays.Load(); r != 0 {
		t.Fatalf("%d replays of the past for results of the present", r)
	}
	// An old message's result is read from the store.
	for i, m := range msgs {
		if g := result(t, cuURL, pid, m).data(); g != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, g)
		}
	}
	if got := evaluations(s); got != want {
		t.Fatalf("reading past results evaluated %d more messages", got-want)
	}
	if r := s.metrics.pastReplays.Load(); r != 0 {
		t.Fatalf("%d replays of the past", r)
	}
}

// TestResultByAssignment asks for a result by the id of the assignment that
// scheduled a message on a second process, as the MU does after an Assign.
func TestResultByAssignment(t *testing.T) {
	n := newNetwork(t)
	_, cuURL := n.newCU(Config{}, false)
	a, b := n.spawn(), n.spawn()
	msg := n.send(a, "alpha", tagAction("Greet"))
	// The SU assigns only what the permanent store holds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(n.gwURL + "/" + msg)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s never reached the gateway", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post(n.suURL+"/?process-id="+b+"&assign="+msg, "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("assign: %d %s", resp.StatusCode, body)
	}
	var rc struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &rc); err != nil || rc.ID == "" || rc.ID == msg {
		t.Fatalf("assign answer %s", body)
	}
	byAssignment := result(t, cuURL, b, rc.ID)
	// aos evaluates it and refuses it (its signer is no Authority of b):
	// the result of the assigned message, not of another one.
	if !containsOutput(byAssignment, "Assignment is not trusted") {
		t.Fatalf("result by assignment id: %+v", byAssignment)
	}
	// A later message to b still gets its result.
	later := n.eval(b, "return 'after'")
	if got := result(t, cuURL, b, later).data(); !strings.HasSuffix(got, "after") {
		t.Fatalf("after the assignment: %q", got)
	}
}

func tagAction(v string) ans104.Tag { return ans104.Tag{Name: "Action", Value: v} }

// containsOutput reports whether r's printed output has s.
func containsOutput(r resultJSON, s string) bool {
	return strings.Contains(string(r.Output), s)
}

// lateGateway is the real gateway seen before the SU's asynchronous
// publication of a process arrives: Tx of the process is not found for the
// first misses calls.
type lateGateway struct {
	Gateway
	pid    string
	misses atomic.Int32
}

func (g *lateGateway) Tx(ctx context.Context, id string) (*Tx, error) {
	if id == g.pid && g.misses.Add(-1) >= 0 {
		return nil, fmt.Errorf("%w: not yet published", ErrNotFound)
	}
	return g.Gateway.Tx(ctx, id)
}

// TestSpawnedProcessFoundAtOnce asks a CU that locates SUs through the
// gateway for a process the gateway does not have yet: it is found, through
// the SUs the CU knows or by asking the gateway again.
func TestSpawnedProcessFoundAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known bool
	}{{"known SU", true}, {"gateway again", false}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNetwork(t)
			pid := n.spawn()
			msg := n.eval(pid, "return 6 * 7")
			gw := &lateGateway{Gateway: NewHTTPGateway(n.gwURL), pid: pid}
			gw.misses.Store(3)
			sched := NewHTTPScheduler("", gw)
			if tc.known {
				sched.Known = []string{n.suURL}
			}
			s, err := New(context.Background(), Config{DataDir: t.TempDir(), Scheduler: sched, Gateway: NewHTTPGateway(n.gwURL),
				CacheDir: filepath.Join(interop.CacheDir(t), "wazero")})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			b, err := s.Result(context.Background(), pid, msg)
			if err != nil {
				t.Fatalf("result of a process the gateway does not have yet: %v", err)
			}
			if !strings.Contains(string(b), "42") {
				t.Fatalf("result %s", b)
			}
		})
	}
}

// TestBudgetByResident: the memory budget counts what instances hold, not
// their 105 MiB linear memories, so several aos processes fit in 64 MiB.
// An instance evicted with nothing evaluated since its restore is not
// checkpointed again.
func TestBudgetByResident(t *testing.T) {
	n := newNetwork(t)
	s, cuURL := n.newCU(Config{MemoryBudget: 64 << 20}, false)
	var pids []string
	for range 3 {
		pid := n.spawn()
		result(t, cuURL, pid, n.eval(pid, "return 1"))
		pids = append(pids, pid)
	}
	// Sizes read within a second of a process's boot are read again.
	s.refreshSizes()
	for _, pid := range pids {
		p, _ := s.process(context.Background(), pid)
		p.mu.Lock()
		if p.inst != nil && p.sizedGen != p.gen.Load() {
			t.Errorf("process %s evaluated since its size was read", pid)
		}
		p.mu.Unlock()
	}
	var sb strings.Builder
	s.writeMetrics(&sb)
	t.Logf("live memory:\n%s", grepLines(sb.String(), "ao_cu_live"))
	if e := s.metrics.evictions.Load(); e != 0 {
		if untouchedWorks() {
			t.Fatalf("%d evictions of 3 small aos processes under a 64 MiB budget", e)
		}
		t.Skip("no /proc/self/pagemap: resident memory is the full size")
	}
	// Evict everything, restore one, evict it again: one checkpoint each.
	s.cfg.MemoryBudget = 1
	s.enforceBudget(context.Background())
	cps := s.metrics.checkpoints.Load()
	if _, _, err := s.State(context.Background(), pids[0]); err != nil {
		t.Fatal(err)
	}
	s.enforceBudget(context.Background())
	if got := s.metrics.checkpoints.Load(); got != cps {
		t.Fatalf("an unchanged restored instance was checkpointed again (%d → %d)", cps, got)
	}
	// Change each process and evict it again, its request gone before the
	// eviction: one checkpoint file per process, no orphans.
	for _, pid := range pids {
		ctx, cancel := context.WithCancel(context.Background())
		m := n.eval(pid, "X = 2")
		if _, err := s.Result(ctx, pid, m); err != nil {
			t.Fatal(err)
		}
		cancel()
		s.enforceBudget(ctx)
	}
	files, _ := filepath.Glob(filepath.Join(s.cfg.DataDir, "checkpoints", "*"))
	if len(files) != len(pids) {
		t.Fatalf("%d checkpoint files for %d processes: %v", len(files), len(pids), files)
	}
	if e := s.metrics.evictions.Load(); e < int64(2*len(pids)) {
		t.Fatalf("%d evictions, want at least %d", e, 2*len(pids))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func untouchedWorks() bool {
	_, err := os.Stat("/proc/self/pagemap")
	return err == nil
}

// TestSameMillisecondSlots has the SU assign every message in one
// millisecond and the CU read the schedule between two of them: the second
// must not be skipped (a page from the first one's timestamp cursor, which
// is exclusive, used to leave a gap in the nonces).
func TestSameMillisecondSlots(t *testing.T) {
	frozen := time.Now().UnixMilli()
	n := newNetworkClock(t, func() int64 { return frozen })
	_, cuURL := n.newCU(Config{}, false)
	pid := n.spawn()
	for i := range 4 {
		m := n.eval(pid, fmt.Sprintf("return %d", i))
		if got := result(t, cuURL, pid, m).data(); !strings.HasSuffix(got, fmt.Sprint(i)) {
			t.Fatalf("message %d: %q", i, got)
		}
	}
}
