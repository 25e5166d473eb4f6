package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/internal/interop"
)

// TestStopDuringLongEvaluation stops the node while a client waits for the
// result of a message that computes for many seconds: the stop cancels it
// after the grace period instead of waiting it out to its deadline, and
// reports no error.
func TestStopDuringLongEvaluation(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	n, err := Start(context.Background(), Config{DataDir: t.TempDir(), GatewayPort: freePort(t), SUPort: freePort(t),
		CUPort: freePort(t), MUPort: freePort(t), BlockInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, n)
	ctx := context.Background()
	module, err := c.PublishModule(ctx, interop.WaoModule(t, "aos2_0_4_32.wasm"), client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: n.SUAddress})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Result(ctx, pid, pid); err != nil {
		t.Fatal(err)
	}
	id, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte("while true do end")})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(n.CUURL + "/result/" + id + "?process-id=" + pid)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	time.Sleep(time.Second) // the evaluation is under way
	if err := n.Close(); err != nil {
		t.Fatalf("stop with a long evaluation in flight: %v", err)
	}
	if ans := <-got; strings.HasPrefix(ans, "200") {
		t.Fatalf("the runaway's result was answered as if evaluated: %.300s", ans)
	}
}
