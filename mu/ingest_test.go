package mu

import (
	"testing"
	"time"

	"github.com/aonode/aonode/wallet"
)

// TestIngestNotBehindCrank: with every crank worker busy on a CU that does
// not answer, a user's POST / still reaches the SU before the MU answers, so
// a result() right after it finds the message (issue 20 item 3).
func TestIngestNotBehindCrank(t *testing.T) {
	const workers = 2
	e := newEnv(t, wallet.Ed25519, func(c *Config) { c.Workers = workers; c.IngestWait = time.Second })
	var ps []string
	for i := range workers + 1 {
		ps = append(ps, e.spawn("p"+string(rune('a'+i))))
	}
	hold := make(chan struct{})
	e.cu.mu.Lock()
	e.cu.hold = hold
	e.cu.mu.Unlock()
	t.Cleanup(func() { close(hold) }) // before the servers close
	for _, p := range ps[:workers] {
		e.send(p, tg("Action", "Slow")...)
	}
	eventually(t, "every crank worker waiting on the CU", func() bool {
		e.cu.mu.Lock()
		defer e.cu.mu.Unlock()
		return e.cu.held == workers
	})
	for i := range 3 {
		start := time.Now()
		id := e.send(ps[workers], tg("Action", "Hi", "N", string(rune('0'+i)))...)
		t.Logf("message %d answered in %v with the crank saturated", i, time.Since(start))
		found := false
		for _, m := range e.messagesTo(ps[workers]) {
			found = found || m.Message.ID == id
		}
		if !found {
			t.Fatalf("message %d: the MU answered 202 before the SU held it (ingest queued behind cranking)", i)
		}
	}
}
