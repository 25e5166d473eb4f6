package mu

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/wallet"
)

// TestRefusedPushDoesNotBlock: a process sends 20 MiB (over the SU's 10 MiB
// body limit) and then a small message to the same target. The SU refuses
// the big one with 413, which no retry can change: that step ends as failed,
// with its reason in the trace and the metrics, and the small one is
// delivered after it (issue 19 item 2).
func TestRefusedPushDoesNotBlock(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, nil)
	a, b := e.spawn("a"), e.spawn("b")
	big := strings.Repeat("x", 20<<20)
	e.cu.script = func(pid string, m suMsg) map[string]any {
		if pid != a || m.tag("Action") != "Go" {
			return nil
		}
		bm := outMsg(b, "1", tg("Action", "Big")...)
		bm["Data"] = big
		return map[string]any{"Messages": []any{bm, outMsg(b, "2", tg("Action", "Small")...)}}
	}
	start := time.Now()
	user := e.send(a, tg("Action", "Go")...)
	eventually(t, "the small message", func() bool { return len(e.messagesTo(b)) == 1 })
	t.Logf("small message delivered %v after the send", time.Since(start))
	e.idle()
	ms := e.messagesTo(b)
	if len(ms) != 1 || ms[0].tag("Action") != "Small" {
		t.Fatalf("b got %d messages, want only the small one", len(ms))
	}
	rows, _, err := e.mu.Trace(e.ctx, TraceQuery{ID: user, Page: 1, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var failed []TraceRow
	for _, r := range rows {
		if r.Status == "failed" {
			failed = append(failed, r)
		} else if r.Status != "done" {
			t.Fatalf("step not finished: %+v", r)
		}
	}
	if len(failed) != 1 || failed[0].Kind != kindMessage || !strings.Contains(failed[0].LastError, "413") || failed[0].Attempts != 1 {
		t.Fatalf("want one failed message step with the SU's 413 after one attempt, got %+v", failed)
	}
	resp, err := http.Get(e.muURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), `mu_tasks_failed_total{kind="message"} 1`) {
		t.Fatalf("metrics do not count the failed step:\n%s", mb)
	}
}

func TestRefusal(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		refuse bool
	}{
		{"413 too large", &HTTPError{Status: 413, Body: `{"error":"Payload larger than 10485760 bytes"}`}, true},
		{"422", &HTTPError{Status: 422, Body: `{"error":"bad"}`}, true},
		{"400 invalid item", &HTTPError{Status: 400, Body: `{"error":"Invalid data item: short"}`}, true},
		{"400 no Type", &HTTPError{Status: 400, Body: `{"error":"Type tag not present"}`}, true},
		{"400 process not found yet", &HTTPError{Status: 400, Body: `{"error":"Process abc not found"}`}, false},
		{"400 transaction not found yet", &HTTPError{Status: 400, Body: `{"error":"Transaction abc not found"}`}, false},
		{"400 confirmations", &HTTPError{Status: 400, Body: `{"error":"Not enough confirmations to assign"}`}, false},
		{"404", &HTTPError{Status: 404, Body: "not found"}, false},
		{"408", &HTTPError{Status: 408}, false},
		{"409", &HTTPError{Status: 409}, false},
		{"425", &HTTPError{Status: 425}, false},
		{"429", &HTTPError{Status: 429}, false},
		{"500", &HTTPError{Status: 500}, false},
		{"503", &HTTPError{Status: 503}, false},
		{"transport", io.ErrUnexpectedEOF, false},
		{"wrapped 413", fmt.Errorf("pushing: %w", &HTTPError{Status: 413}), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, got := refusal(c.err)
			if got != c.refuse {
				t.Fatalf("refusal = %v, want %v", got, c.refuse)
			}
			if isPermanent(unitErr(c.err, false)) != c.refuse {
				t.Fatalf("in the crank: permanent = %v, want %v", !c.refuse, c.refuse)
			}
		})
	}
}
