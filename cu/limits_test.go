package cu

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
)

const fuelError = "Evaluation exceeded the CU's compute limit"

// TestRunawayDryRunsDoNotStall sends runaway dry-runs (unsigned, anyone can)
// and then a real message to another process: the message is evaluated
// while the dry-runs still run, because dry-runs have workers of their own.
func TestRunawayDryRunsDoNotStall(t *testing.T) {
	n := newNetwork(t)
	// A dry-run fuel limit far above what the message needs, so that the
	// dry-runs are surely still running when the message is done.
	_, cuURL := n.newCU(Config{Workers: 1, DryRunWorkers: 1, DryRunFuel: 3000e9}, false)
	victim, other := n.spawn(), n.spawn()
	result(t, cuURL, other, n.eval(other, "X = 1"))
	result(t, cuURL, victim, n.eval(victim, "Y = 1"))
	owner, _ := ans104.Sign(clientKey, nil, ans104.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var dryDone sync.WaitGroup
	finished := make(chan struct{}, 4)
	for i := range 4 {
		dryDone.Add(1)
		wg.Go(func() {
			defer dryDone.Done()
			body := `{"Target":"` + other + `","Owner":"` + owner.OwnerAddress() + `","Tags":[{"name":"Action","value":"Eval"}],"Data":"local n = ` + string(rune('0'+i)) + ` while true do n = n + 1 end"}`
			req, _ := http.NewRequestWithContext(ctx, "POST", cuURL+"/dry-run?process-id="+other, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				finished <- struct{}{}
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // let them start
	start := time.Now()
	msg := n.eval(victim, "return Y + 41")
	if got := result(t, cuURL, victim, msg).data(); got != "42" {
		t.Fatalf("victim: %q", got)
	}
	took := time.Since(start)
	if k := len(finished); k > 0 {
		t.Fatalf("%d runaway dry-runs finished before the message (took %v): they delayed it", k, took)
	}
	t.Logf("message result during 4 runaway dry-runs: %v", took)
	cancel() // the dry-runs stop when their clients go away
	dryDone.Wait()
}

// TestRunawayMessageDeterministic evaluates a runaway message: it fails at
// the fuel limit, the process goes on, and a CU that replays the schedule
// (here the same store, without a checkpoint) finds the stored failure and
// does not run the message again.
func TestRunawayMessageDeterministic(t *testing.T) {
	n := newNetwork(t)
	dir := t.TempDir()
	s1, url1 := n.newCU(Config{DataDir: dir, MessageFuel: 20e9, CheckpointEvery: -1}, false)
	pid := n.spawn()
	n.eval(pid, "X = 1")
	runaway := n.eval(pid, "X = 2; while true do end")
	last := n.eval(pid, "return X")
	r1 := result(t, url1, pid, runaway)
	if !strings.Contains(string(r1.Error), fuelError) {
		t.Fatalf("runaway: %s", r1.Error)
	}
	if got := result(t, url1, pid, last).data(); !strings.HasSuffix(got, "1") {
		t.Fatalf("after the runaway X = %q, want 1", got)
	}
	if got := s1.metrics.fuelExhausted.Load(); got != 1 {
		t.Fatalf("fuel exhausted %d times, want 1", got)
	}
	s1.Close()

	s2, url2 := n.newCU(Config{DataDir: dir, MessageFuel: 20e9, CheckpointEvery: -1}, false)
	next := n.eval(pid, "return X + 10")
	if got := result(t, url2, pid, next).data(); !strings.HasSuffix(got, "11") {
		t.Fatalf("after replay X + 10 = %q", got)
	}
	if got := s2.metrics.coldStarts.Load(); got != 1 {
		t.Fatalf("%d cold starts, want 1 (a replay)", got)
	}
	if got := s2.metrics.fuelExhausted.Load(); got != 0 {
		t.Fatalf("the replay ran the runaway message again (%d)", got)
	}
	r2 := result(t, url2, pid, runaway)
	if string(r2.Error) != string(r1.Error) {
		t.Fatalf("replayed result differs: %s vs %s", r2.Error, r1.Error)
	}
}

// TestRunawayMessageShares runs a runaway message of one process on the only
// worker: another process's message is still evaluated while it runs.
func TestRunawayMessageShares(t *testing.T) {
	n := newNetwork(t)
	s, cuURL := n.newCU(Config{Workers: 1, MessageFuel: 3000e9}, false)
	hog, other := n.spawn(), n.spawn()
	result(t, cuURL, hog, n.eval(hog, "X = 1"))
	result(t, cuURL, other, n.eval(other, "Y = 1"))
	runaway := n.eval(hog, "while true do end")
	hogDone := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(hogDone)
		req, _ := http.NewRequestWithContext(ctx, "GET", cuURL+"/result/"+runaway+"?process-id="+hog, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if got := result(t, cuURL, other, n.eval(other, "return Y + 1")).data(); got != "2" {
		t.Fatalf("other: %q", got)
	}
	select {
	case <-hogDone:
		t.Fatal("the runaway finished first: it held the only worker")
	default:
	}
	// Its client goes away: the evaluation is cancelled, nothing stored.
	cancel()
	<-hogDone
	if b, ok, _ := s.store.resultByMessage(context.Background(), hog, runaway); ok {
		t.Fatalf("a cancelled evaluation stored a result: %s", b)
	}
}
