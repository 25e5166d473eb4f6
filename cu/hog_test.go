package cu

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
)

// TestMemoryHogDoesNotStallDryRuns runs a process that allocates without
// end and, meanwhile, dry-runs on another process: they answer (a goroutine
// in wasm reaches the runtime at every fuel refill, so collections do not wait
// for the hog). Before the fuel limit on every message, one waited 28 s. The
// bound is generous on purpose: idle, a dry-run takes 15 ms.
func TestMemoryHogDoesNotStallDryRuns(t *testing.T) {
	n := newNetwork(t)
	_, cuURL := n.newCU(Config{}, false)
	hog, other := n.spawn(), n.spawn()
	result(t, cuURL, hog, n.eval(hog, "X = 1"))
	result(t, cuURL, other, n.eval(other, "Y = 1"))
	owner, _ := ans104.Sign(clientKey, nil, ans104.Options{})
	body := `{"Target":"` + other + `","Owner":"` + owner.OwnerAddress() + `","Tags":[{"name":"Action","value":"Eval"}],"Data":"return Y"}`
	dry := func() time.Duration {
		t0 := time.Now()
		req, _ := http.NewRequest("POST", cuURL+"/dry-run?process-id="+other, strings.NewReader(body))
		req.Header.Set("x-max-age", "0")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return time.Since(t0)
	}
	t.Logf("idle dry-run: %v", dry())
	ctx, cancel := context.WithCancel(context.Background())
	runaway := n.eval(hog, `local t = {} local i = 0 while true do i = i + 1 t[i] = string.rep("x", 4096) .. i end`)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", cuURL+"/result/"+runaway+"?process-id="+hog, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	for i := range 4 {
		time.Sleep(300 * time.Millisecond)
		d := dry()
		t.Logf("dry-run %d during the memory hog: %v", i, d)
		if d > 10*time.Second {
			t.Fatalf("a dry-run took %v while another process allocated", d)
		}
	}
	cancel()
}
