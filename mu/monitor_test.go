package mu

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aonode/aonode/wallet"
)

// monitorReq sends POST or DELETE /monitor/{pid} with body.
func (e *env) monitorReq(method, pid string, body []byte) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.muURL+"/monitor/"+pid, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMonitorRefusals: a monitor needs a signed item whose target is a
// process the MU can locate, and there are at most MaxMonitors of them; a
// refused one is answered with a JSON error, stored nowhere and never polled
// (issue 19 item 5).
func TestMonitorRefusals(t *testing.T) {
	e := newEnv(t, wallet.Ed25519, func(c *Config) { c.MaxMonitors = 2 })
	a, b, c := e.spawn("a"), e.spawn("b"), e.spawn("c")
	signed := func(pid string) []byte { return e.sign(pid, " ").Bytes() } // as aoconnect's monitor()
	badSig := signed(a)
	badSig[len(badSig)-1] ^= 1
	unknown := randomID()
	// A transaction the gateway knows that is not a process.
	other := e.sign(a, "x", tg("Data-Protocol", "ao", "Type", "Message")...)
	if err := NewHTTPGateway(e.gwURL).Upload(e.ctx, other.Bytes()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		method string
		pid    string
		body   []byte
		code   int
	}{
		{"empty body", "POST", unknown, nil, 400},
		{"empty body, known process", "POST", a, nil, 400},
		{"garbage", "POST", a, []byte("junk"), 400},
		{"bad signature", "POST", a, badSig, 400},
		{"no target", "POST", a, e.sign("", " ").Bytes(), 400},
		{"another target", "POST", a, signed(b), 400},
		{"bad id", "POST", "abc", signed(a), 400},
		{"unknown process", "POST", unknown, signed(unknown), 404},
		{"not a process", "POST", other.ID(), signed(other.ID()), 400},
		{"too large", "POST", a, bytes.Repeat([]byte("x"), 1<<20), 413},
		{"delete, empty body", "DELETE", a, nil, 400},
		{"a", "POST", a, signed(a), 200},
		{"a again", "POST", a, signed(a), 200},
		{"b", "POST", b, signed(b), 200},
		{"c, over the cap", "POST", c, signed(c), 429},
		{"delete b", "DELETE", b, signed(b), 200},
		{"c, after b left", "POST", c, signed(c), 200},
	}
	for _, tc := range cases {
		code, body := e.monitorReq(tc.method, tc.pid, tc.body)
		if code != tc.code {
			t.Fatalf("%s: %d %s, want %d", tc.name, code, body, tc.code)
		}
		if code >= 400 && !strings.HasPrefix(body, `{"error":`) {
			t.Fatalf("%s: not a JSON error: %s", tc.name, body)
		}
	}
	mons, err := e.mu.st.monitors(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(mons) != 2 {
		t.Fatalf("stored monitors %v, want a and c", mons)
	}
	for _, p := range []string{a, c} {
		if _, ok := mons[p]; !ok {
			t.Fatalf("stored monitors %v, want a and c", mons)
		}
	}
	// The monitored processes are polled; the refused ids never are.
	eventually(t, "polls of c", func() bool {
		e.cu.mu.Lock()
		defer e.cu.mu.Unlock()
		return e.cu.polls[c] >= 3
	})
	e.cu.mu.Lock()
	defer e.cu.mu.Unlock()
	for _, p := range []string{unknown, other.ID()} {
		if n := e.cu.polls[p]; n > 0 {
			t.Fatalf("refused monitor %s polled %d times", p, n)
		}
	}
}

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), sub)
}

// TestMonitorBackoff: while the CU fails a monitor's polls, the MU polls it
// less and less often and logs one line when it starts failing and one when
// it works again, not one per poll; then cron outputs are delivered again.
func TestMonitorBackoff(t *testing.T) {
	var logs lockedBuffer
	e := newEnv(t, wallet.Ed25519, func(c *Config) {
		c.CronInterval = 50 * time.Millisecond
		c.MaxRetryDelay = 2 * time.Second
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	p, target := e.spawn("cron"), e.spawn("target")
	e.cu.mu.Lock()
	e.cu.cronFail[p] = true
	e.cu.mu.Unlock()
	if code, body := e.monitorReq("POST", p, e.sign(p, " ").Bytes()); code != 200 {
		t.Fatalf("monitor: %d %s", code, body)
	}
	time.Sleep(3 * time.Second) // 60 intervals
	e.cu.mu.Lock()
	polls := e.cu.polls[p]
	e.cu.cronFail[p] = false
	e.cu.mu.Unlock()
	t.Logf("%d polls in 3 s of failures", polls)
	// Without back-off: about 60; with it: 50 ms doubling per failure, 5 or 6.
	if polls < 1 || polls > 15 {
		t.Fatalf("%d polls in 3 s of failures, want between 1 and 15 (back-off)", polls)
	}
	if n := logs.count("cron: "); n != 1 {
		t.Fatalf("%d cron log lines while failing, want 1:\n%s", n, logs.b.String())
	}
	e.cu.addCron(p, map[string]any{"Messages": []any{outMsg(target, "1", tg("Action", "Tick")...)}})
	eventually(t, "the tick after recovery", func() bool { return len(e.messagesTo(target)) == 1 })
	eventually(t, "the recovery log line", func() bool { return logs.count("cron: polling works again") == 1 })
	if n := logs.count("cron: "); n != 2 {
		t.Fatalf("%d cron log lines, want 2:\n%s", n, logs.b.String())
	}
}
