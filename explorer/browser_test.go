package explorer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/node"
)

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNode starts a whole node, with the AO-Core surface and the explorer,
// on free loopback ports in a temporary directory.
func startNode(t testing.TB) *node.Node {
	t.Helper()
	dir := t.TempDir()
	var n *node.Node
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		n, err = node.Start(context.Background(), node.Config{DataDir: dir, GatewayPort: freePort(t), SUPort: freePort(t),
			CUPort: freePort(t), MUPort: freePort(t), HBPort: freePort(t), ExplorerPort: freePort(t), BlockInterval: 100 * time.Millisecond})
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func newClient(n *node.Node) *client.Client {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := client.New(ans104.NewEd25519Signer(key))
	c.Gateway, c.SU, c.CU, c.MU = n.GatewayURL, n.SUURL, n.CUURL, n.MUURL
	return c
}

// chromiumPath finds Debian's chromium. Without it the browser tests skip,
// unless AONODE_REQUIRE_BROWSER is set (CI), where they fail.
func chromiumPath(t testing.TB) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("AONODE_REQUIRE_BROWSER") != "" {
		t.Fatal("chromium is not installed (apt-get install -y chromium) and AONODE_REQUIRE_BROWSER is set")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium; AONODE_REQUIRE_BROWSER=1 makes this fatal)")
	return ""
}

// browser is one headless Chromium tab that records console errors and
// uncaught exceptions of the pages it shows.
type browser struct {
	t    testing.TB
	ctx  context.Context
	base string

	mu     sync.Mutex
	errors []string
}

func newBrowser(t testing.TB, base string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, base: base}
	if err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
				return
			}
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
		case *runtime.EventExceptionThrown:
			// The test's own evaluations have no script URL; they fail
			// the test through their result.
			if e.ExceptionDetails.URL == "" {
				return
			}
			msg = (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
		default:
			return
		}
		b.mu.Lock()
		b.errors = append(b.errors, msg)
		b.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// use makes t the test of the next steps; errors left by a failed earlier
// subtest are dropped.
func (b *browser) use(t testing.TB) {
	b.t = t
	b.mu.Lock()
	b.errors = nil
	b.mu.Unlock()
}

// open shows a page (#/...) and waits until it has rendered.
func (b *browser) open(hash string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(b.base+"/"+hash), chromedp.WaitVisible(`#main[data-ready]`)); err != nil {
		b.t.Fatalf("open %s: %v", hash, err)
	}
	b.noErrors(hash)
}

// goTo changes the page inside the app (no reload) and waits for it.
func (b *browser) goTo(hash string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`location.hash = %q; true`, hash))
	b.wait(fmt.Sprintf(`location.hash === %q && !!document.querySelector('#main[data-ready]')`, hash), "page "+hash)
	b.noErrors(hash)
}

func (b *browser) noErrors(where string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Fatalf("%s: console errors:\n%s", where, strings.Join(b.errors, "\n"))
	}
	if msg := b.evalString(`[...document.querySelectorAll('.error')].map(e => e.textContent).join('\n')`); msg != "" {
		b.t.Fatalf("%s: the page shows an error: %s", where, msg)
	}
}

func run[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

func (b *browser) eval(js string) bool { b.t.Helper(); return run(b, chromedp.Evaluate[bool](js)) }
func (b *browser) evalString(js string) string {
	b.t.Helper()
	return run(b, chromedp.Evaluate[string](js))
}
func (b *browser) evalStrings(js string) []string {
	b.t.Helper()
	return run(b, chromedp.Evaluate[[]string](js))
}
func (b *browser) evalInt(js string) int { b.t.Helper(); return run(b, chromedp.Evaluate[int](js)) }

// wait polls a JavaScript condition until it holds (the pages load parts
// asynchronously and update live).
func (b *browser) wait(cond, what string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !b.eval(fmt.Sprintf(`(() => { try { return !!(%s); } catch { return false; } })()`, cond)) {
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: %s never held; the page says:\n%s", what, cond, b.evalString(`document.getElementById('main').innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot writes the viewport (or with sel, one element) as PNG into
// $AONODE_SCREENSHOTS, when set: the README's pictures.
func (b *browser) screenshot(name string, sel ...string) {
	b.t.Helper()
	dir := os.Getenv("AONODE_SCREENSHOTS")
	if dir == "" {
		return
	}
	var png []byte
	if len(sel) > 0 {
		png = run(b, chromedp.Screenshot(sel[0]))
	} else {
		png = run(b, chromedp.CaptureScreenshot())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// network is the small AO network the explorer is shown: alpha and beta play
// ping-pong, alpha spawns a child, a cron process ticks, and one of alpha's
// messages fails.
type network struct {
	n                       *node.Node
	c                       *client.Client
	module                  string
	alpha, beta, ticker     string
	pingEval, fail, spawnEv string
	child                   string
}

func buildNetwork(t *testing.T) *network {
	t.Helper()
	wasm := interop.WaoModule(t, "aos2_0_4_32.wasm")
	n := startNode(t)
	c := newClient(n)
	ctx := context.Background()
	module, err := c.PublishModule(ctx, wasm, client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	nw := &network{n: n, c: c, module: module}
	spawn := func(tags ...client.Tag) string {
		t.Helper()
		pid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: n.SUAddress, Tags: append([]client.Tag{{Name: "Authority", Value: n.MUAddress}}, tags...)})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	send := func(pid, code string) (string, *client.Result) {
		t.Helper()
		id, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte(code)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Result(ctx, pid, id)
		if err != nil {
			t.Fatal(err)
		}
		return id, r
	}
	eval := func(pid, code string) *client.Result {
		t.Helper()
		_, r := send(pid, code)
		if r.Failed() {
			t.Fatalf("%s: %s", code, r.Error)
		}
		return r
	}
	until := func(pid, code, want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if got := eval(pid, code).OutputData(); got == want {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("%s in %s: %q, want %q", code, pid, got, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	nw.alpha = spawn(client.Tag{Name: "Name", Value: "alpha"})
	nw.beta = spawn(client.Tag{Name: "Name", Value: "beta"})
	eval(nw.beta, `Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), function (msg) msg.reply({ Action = "Pong", Data = "pong: " .. msg.Data }) end)`)
	eval(nw.alpha, `Got = {} Handlers.add("pong", Handlers.utils.hasMatchingTag("Action", "Pong"), function (msg) table.insert(Got, msg.Data) end)`)
	var r *client.Result
	nw.pingEval, r = send(nw.alpha, fmt.Sprintf(`Send({ Target = %q, Action = "Ping", Data = "hello" }) return "sent"`, nw.beta))
	if r.Failed() || r.OutputData() != "sent" {
		t.Fatalf("ping: %+v", r)
	}
	until(nw.alpha, `return table.concat(Got, ",")`, "pong: hello")

	// State exposed through patch@1.0, for the process page.
	eval(nw.alpha, `Send({ device = 'patch@1.0', counter = '7' }) return "exposed"`)

	// A spawn, heard back as Spawned.
	eval(nw.alpha, `Handlers.add("spawned", Handlers.utils.hasMatchingTag("Action", "Spawned"), function (msg) Child = msg.Process end)`)
	nw.spawnEv, r = send(nw.alpha, fmt.Sprintf(`Spawn(ao.env.Process.Tags.Module, { Tags = { Authority = %q, Name = "child" } }) return "spawning"`, n.MUAddress))
	if r.Failed() || len(r.Spawns) != 1 {
		t.Fatalf("spawn: %+v", r)
	}
	until(nw.alpha, `return Child and #Child or 0`, "43")
	nw.child = eval(nw.alpha, `return Child`).OutputData()

	// A cron process ticking every second, driven by the MU.
	nw.ticker = spawn(client.Tag{Name: "Name", Value: "ticker"}, client.Tag{Name: "Cron-Interval", Value: "1-second"}, client.Tag{Name: "Cron-Tag-Action", Value: "Cron"})
	eval(nw.ticker, `Ticks = 0 Handlers.add("cron", Handlers.utils.hasMatchingTag("Action", "Cron"), function () Ticks = Ticks + 1 print("tick " .. Ticks) end)`)
	if err := c.Monitor(ctx, nw.ticker); err != nil {
		t.Fatal(err)
	}
	until(nw.ticker, `return Ticks >= 2 and "ticking" or tostring(Ticks)`, "ticking")
	if err := c.Unmonitor(ctx, nw.ticker); err != nil {
		t.Fatal(err)
	}

	// A message that fails.
	nw.fail, r = send(nw.alpha, `error("boom")`)
	if !r.Failed() {
		t.Fatalf("error(\"boom\") did not fail: %+v", r)
	}
	return nw
}

// TestExplorerInBrowser drives the explorer in headless Chromium through a
// real node: every page renders without console errors and shows the
// network's data, links lead between pages, the flow of a ping-pong has its
// three messages and two edges, and new slots appear without a reload.
func TestExplorerInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chromiumPath(t)
	nw := buildNetwork(t)
	n := nw.n
	b := newBrowser(t, n.ExplorerURL)
	addr := nw.c.Signer.Owner()
	wallet := ans104.Address(addr)

	t.Run("network", func(t *testing.T) {
		b.use(t)
		b.open("#/")
		units := b.evalStrings(`[...document.querySelectorAll('#units tbody tr')].map(r => r.dataset.unit)`)
		if strings.Join(units, ",") != "gateway,mu,su,cu,hb" {
			t.Fatalf("units %v", units)
		}
		b.wait(`[...document.querySelectorAll('#units td.status')].every(td => td.textContent.startsWith('up'))`, "every unit up")
		if got := b.evalString(`document.querySelector('#units tr[data-unit=su] a').dataset.id`); got != n.SUAddress {
			t.Fatalf("SU address %q, want %q", got, n.SUAddress)
		}
		if got := b.evalString(`document.querySelector('#units tr[data-unit=mu] a').dataset.id`); got != n.MUAddress {
			t.Fatalf("MU address %q, want %q", got, n.MUAddress)
		}
		b.wait(`Number(document.querySelector('[data-metric=su_processes_active]').textContent) >= 1`, "the SU's active processes counter")
		b.wait(`Number(document.querySelector('[data-metric=ao_cu_live_instances]').textContent) >= 1`, "the CU's live instances")
		// The chart appears with the second poll, without a reload.
		b.eval(`window.__stay = 1; true`)
		b.wait(`document.querySelector('#chart svg path[data-series=scheduled]')`, "the live chart")
		if !b.eval(`window.__stay === 1`) {
			t.Fatal("the page reloaded")
		}
		b.noErrors("network")
		b.screenshot("network", "main")
	})

	t.Run("processes", func(t *testing.T) {
		b.use(t)
		b.open("#/processes")
		b.wait(`document.querySelectorAll('#processes tbody tr').length === 4`, "4 processes")
		names := b.evalStrings(`[...document.querySelectorAll('#processes tbody tr')].map(r => r.cells[0].textContent).sort()`)
		if strings.Join(names, ",") != "alpha,beta,child,ticker" {
			t.Fatalf("processes %v", names)
		}
		b.wait(`[...document.querySelectorAll('#processes tbody tr')].every(r => /^\d+$/.test(r.cells[4].textContent))`, "slot counts")
		if got := b.evalString(fmt.Sprintf(`document.querySelector('#processes tr[data-process=%q]').cells[4].textContent`, nw.beta)); got != "3" {
			t.Fatalf("beta has %s slots, want 3 (spawn, Eval, Ping)", got)
		}
		b.screenshot("processes")
		// Search by name, by tag, by id.
		for _, tc := range []struct{ q, want string }{{"alpha", nw.alpha}, {"Name=child", nw.child}, {"Cron-Interval=1-second", nw.ticker}} {
			b.goTo("#/processes?q=" + tc.q)
			got := b.evalStrings(`[...document.querySelectorAll('#processes tbody tr')].map(r => r.dataset.process)`)
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("search %q: %v, want %s", tc.q, got, tc.want)
			}
		}
		// The header search resolves an id to its page.
		b.eval(fmt.Sprintf(`document.getElementById('search').value = %q; document.querySelector('#search-form button').click(); true`, nw.beta))
		b.wait(fmt.Sprintf(`location.hash === '#/process/%s' && document.querySelector('#main[data-ready]')`, nw.beta), "the search to open beta")
		// A link in the list opens the process.
		b.goTo("#/processes?q=alpha")
		b.eval(`document.querySelector('#processes tbody tr a.link-process').click(); true`)
		b.wait(fmt.Sprintf(`location.hash === '#/process/%s' && document.querySelector('#main[data-ready]')`, nw.alpha), "the link to alpha")
		b.noErrors("processes")
	})

	t.Run("process", func(t *testing.T) {
		b.use(t)
		b.open("#/process/" + nw.alpha)
		if got := b.evalString(`document.getElementById('process-name').textContent`); got != "alpha" {
			t.Fatalf("name %q", got)
		}
		row := func(id string) string { return fmt.Sprintf(`document.querySelector('#schedule tr[data-id=%q]')`, id) }
		b.wait(row(nw.pingEval)+`.querySelector('.badge.ok')`, "the ping's result")
		if got := b.evalString(row(nw.pingEval) + `.querySelector('td.status').textContent`); !strings.Contains(got, "sent") || !strings.Contains(got, "1 msg") {
			t.Fatalf("ping row result %q", got)
		}
		b.wait(row(nw.fail)+`.classList.contains('failed')`, "the failed message marked")
		if got := b.evalString(row(nw.fail) + `.querySelector('td.status').textContent`); !strings.Contains(got, "boom") {
			t.Fatalf("failed row %q", got)
		}
		// The Pong came from beta.
		if !b.eval(fmt.Sprintf(`[...document.querySelectorAll('#schedule tbody tr[data-slot]')].some(r => r.cells[4].textContent === 'Pong' && r.cells[3].querySelector('a').dataset.id === %q)`, nw.beta)) {
			t.Fatal("no Pong from beta in alpha's schedule")
		}
		// Opening a row shows the result as aos prints it.
		b.eval(row(nw.pingEval) + `.click(); true`)
		if got := b.evalString(row(nw.pingEval) + `.nextElementSibling.querySelector('pre.output').textContent`); got != "sent" {
			t.Fatalf("output %q", got)
		}
		// Local time, raw value on hover; ids copyable.
		if !b.eval(`/^\d{13} /.test(document.querySelector('#schedule time').title)`) || !b.eval(`!!document.querySelector('#schedule button.copy[data-copy]')`) {
			t.Fatal("no raw timestamp title or copy button")
		}
		b.wait(`document.querySelector('#patch-state tr[data-key=counter]')`, "the patch@1.0 state")
		if got := b.evalString(`document.querySelector('#patch-state tr[data-key=counter] td').textContent`); got != "7" {
			t.Fatalf("patch state counter %q", got)
		}
		b.wait(`document.querySelector('#attestations p')`, "the attestations section")
		b.screenshot("process")

		// Live: a message sent while the page is open appears without a reload.
		slots := b.evalInt(`Number(document.getElementById('slot-count').textContent)`)
		b.eval(`window.__stay = 1; true`)
		id, err := nw.c.Message(context.Background(), client.Message{Process: nw.alpha, Tags: []client.Tag{{Name: "Action", Value: "Eval"}}, Data: []byte("return 'live'")})
		if err != nil {
			t.Fatal(err)
		}
		b.wait(row(id)+` && `+row(id)+`.dataset.slot == `+fmt.Sprint(slots), "the new slot to appear")
		b.wait(row(id)+`.querySelector('.badge.ok')`, "the new slot's result")
		if got := b.evalString(row(id) + `.nextElementSibling.querySelector('pre.output').textContent`); !strings.HasSuffix(got, "live") {
			t.Fatalf("new slot's output %q", got)
		}
		if !b.eval(`window.__stay === 1`) {
			t.Fatal("the page reloaded")
		}

		// The dry-run console answers and schedules nothing.
		b.eval(`document.querySelector('form.dry-run textarea[name=data]').value = 'return 6 * 7'; document.querySelector('form.dry-run button').click(); true`)
		b.wait(`document.querySelector('#dry-run-result pre.output') && document.querySelector('#dry-run-result pre.output').textContent === '42'`, "the dry-run result")
		time.Sleep(2500 * time.Millisecond) // one live poll
		if got := b.evalInt(`Number(document.getElementById('slot-count').textContent)`); got != slots+1 {
			t.Fatalf("slots %d after the dry-run, want %d", got, slots+1)
		}
		b.noErrors("process")
		if !b.eval(`document.querySelector('#schedule .pager').textContent.includes('slots 0–')`) {
			t.Fatal("no pager")
		}
	})

	t.Run("cron", func(t *testing.T) {
		b.use(t)
		b.open("#/process/" + nw.ticker)
		b.wait(`document.querySelectorAll('#cron tr.cron-tick').length >= 2`, "cron ticks")
		if got := b.evalString(`document.querySelector('#cron tr.cron-tick pre').textContent`); !strings.HasPrefix(got, "tick ") {
			t.Fatalf("cron output %q", got)
		}
		b.noErrors("cron")
	})

	t.Run("message and flow", func(t *testing.T) {
		b.use(t)
		b.open("#/message/" + nw.pingEval + "?process=" + nw.alpha)
		b.wait(`document.querySelector('#signature [data-status]')`, "the signature check")
		if got := b.evalString(`document.querySelector('#signature [data-status]').dataset.status`); got != "valid" {
			t.Fatalf("signature %s: %s", got, b.evalString(`document.getElementById('signature').textContent`))
		}
		b.wait(`document.querySelector('#chain-link [data-status]')`, "the hash chain check")
		if got := b.evalString(`document.querySelector('#chain-link [data-status]').dataset.status`); got != "valid" {
			t.Fatalf("hash chain %s", got)
		}
		b.wait(`document.querySelector('#result pre.output')`, "the result")
		if got := b.evalString(`document.querySelector('#result pre.output').textContent`); got != "sent" {
			t.Fatalf("result %q", got)
		}
		// The CU attests its results (on by default).
		b.wait(`document.querySelector('#attestation h3')`, "the attestation section")
		if !b.eval(`[...document.querySelectorAll("#attestation dd code")].some(c => /^[0-9a-f]{64}$/.test(c.textContent))`) {
			t.Fatalf("attestation: %s", b.evalString(`document.getElementById('attestation').innerText`))
		}
		b.wait(`document.querySelector('#flow-graph')`, "the flow graph")
		type node struct{ ID, Process, Kind, Status string }
		nodes := run(b, chromedp.Evaluate[[]node](`[...document.querySelectorAll('#flow-graph g.node')].map(g => ({ID: g.dataset.id, Process: g.dataset.process, Kind: g.dataset.kind, Status: g.dataset.status}))`))
		edges := b.evalStrings(`[...document.querySelectorAll('#flow-graph path.edge')].map(p => p.dataset.from + '>' + p.dataset.to)`)
		if len(nodes) != 3 {
			t.Fatalf("flow nodes %+v", nodes)
		}
		var ping, pong node
		for _, nd := range nodes {
			switch {
			case nd.ID == nw.pingEval:
				if nd.Process != nw.alpha || nd.Kind != "ingest" {
					t.Fatalf("root node %+v", nd)
				}
			case nd.Process == nw.beta:
				ping = nd
			case nd.Process == nw.alpha:
				pong = nd
			}
			if nd.Status != "done" {
				t.Fatalf("node %+v not done", nd)
			}
		}
		if ping.ID == "" || pong.ID == "" || ping.Kind != "message" || pong.Kind != "message" {
			t.Fatalf("flow nodes %+v", nodes)
		}
		want := []string{nw.pingEval + ">" + ping.ID, ping.ID + ">" + pong.ID}
		if strings.Join(edges, " ") != strings.Join(want, " ") {
			t.Fatalf("flow edges %v, want %v", edges, want)
		}
		// The Ping is what beta received: its schedule holds it.
		if _, err := nw.c.Result(context.Background(), nw.beta, ping.ID); err != nil {
			t.Fatalf("the Ping node %s is not beta's message: %v", ping.ID, err)
		}
		b.screenshot("message")
		b.screenshot("flow", "#flow .graph")
		// A node opens that message's page, whose graph is the same tree.
		b.eval(fmt.Sprintf(`document.querySelector('#flow-graph g.node[data-id=%q]').dispatchEvent(new MouseEvent('click')); true`, pong.ID))
		b.wait(fmt.Sprintf(`location.hash === '#/message/%s?process=%s' && document.querySelector('#main[data-ready]')`, pong.ID, nw.alpha), "the Pong's page")
		b.wait(`document.querySelector('#flow-graph g.node.focus')`, "the Pong's flow")
		if got := b.evalString(`document.querySelector('#flow-graph g.node.focus').dataset.id`); got != pong.ID {
			t.Fatalf("focused node %s, want the Pong %s", got, pong.ID)
		}
		// alpha's Pong handler prints nothing: the result has no output and no error.
		b.wait(`document.querySelector('#result .result')`, "the Pong's result")
		if got := b.evalString(`document.querySelector('#result .result').textContent`); !strings.HasPrefix(got, "No output.") {
			t.Fatalf("Pong result %q", got)
		}
		b.noErrors("flow")
	})

	t.Run("failed message", func(t *testing.T) {
		b.use(t)
		b.open("#/message/" + nw.fail + "?process=" + nw.alpha)
		b.wait(`document.querySelector('#result .result-error')`, "the error")
		if got := b.evalString(`document.querySelector('#result .result-error').textContent`); !strings.Contains(got, "boom") {
			t.Fatalf("error %q", got)
		}
		b.wait(`document.querySelector('#flow-graph g.node')`, "the flow")
		if got := b.evalString(`document.querySelector('#flow-graph g.node').dataset.status`); got != "failed" {
			t.Fatalf("failed node status %q", got)
		}
		if got := b.evalString(`document.querySelector('#flow-graph g.node title').textContent`); !strings.Contains(got, "boom") {
			t.Fatalf("failed node reason %q", got)
		}
		b.noErrors("failed message")
	})

	t.Run("spawn", func(t *testing.T) {
		b.use(t)
		b.open("#/message/" + nw.spawnEv + "?process=" + nw.alpha)
		b.wait(`document.querySelector('#flow-graph g.node[data-kind=spawn]')`, "the spawn in the flow")
		b.wait(`document.querySelector('#result h4')`, "the result's outbox")
		if got := b.evalString(`[...document.querySelectorAll('#result h4')].map(h => h.textContent).join()`); !strings.Contains(got, "Spawns (1)") {
			t.Fatalf("result lists %q", got)
		}
		b.goTo("#/process/" + nw.child)
		if got := b.evalString(`document.getElementById('process-name').textContent`); got != "child" {
			t.Fatalf("child name %q", got)
		}
		// The MU signs the spawn on alpha's behalf: the item's owner is the MU.
		if got := b.evalString(`[...document.querySelectorAll('#main dl.kv dd')][0].querySelector('a').dataset.id`); got != n.MUAddress {
			t.Fatalf("child owner %s, want the MU %s", got, n.MUAddress)
		}
		b.noErrors("spawn")
	})

	t.Run("module and wallet", func(t *testing.T) {
		b.use(t)
		b.open("#/module/" + nw.module)
		b.wait(`document.querySelectorAll('#processes tbody tr').length >= 4`, "the module's processes")
		if !b.eval(`document.querySelector('#main dl.kv dd').textContent === 'wasm32-unknown-emscripten4'`) {
			t.Fatal("module format not shown")
		}
		b.open("#/wallet/" + wallet)
		b.wait(fmt.Sprintf(`document.querySelector('#processes tr[data-process=%q]')`, nw.alpha), "the wallet's processes")
		b.wait(fmt.Sprintf(`document.querySelector('#sent a[data-id=%q]')`, nw.fail), "what the wallet signed")
		// Its message links to the message page.
		b.eval(fmt.Sprintf(`document.querySelector('#sent a[data-id=%q]').click(); true`, nw.fail))
		b.wait(fmt.Sprintf(`location.hash.startsWith('#/message/%s') && document.querySelector('#main[data-ready]')`, nw.fail), "the message page")
		b.wait(`document.querySelector('#result .result-error')`, "the failed result")
		b.noErrors("wallet")
	})
}

// BenchmarkProcessPage10k opens the page of a process with 10,000 messages
// in headless Chromium: "ready" is until the schedule's newest page is
// shown, "results" until every row of it shows its result. The messages go
// straight to the SU and are evaluated once before the timing.
//
//	go test -run '^$' -bench ProcessPage10k -benchtime 20x -timeout 30m ./explorer/
func BenchmarkProcessPage10k(b *testing.B) {
	const messages = 10000
	wasm := interop.WaoModule(b, "aos2_0_4_32.wasm")
	chromiumPath(b)
	n := startNode(b)
	c := newClient(n)
	ctx := context.Background()
	module, err := c.PublishModule(ctx, wasm, client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		b.Fatal(err)
	}
	pid, err := c.Spawn(ctx, client.Spawn{Module: module, Scheduler: n.SUAddress, Tags: []client.Tag{{Name: "Name", Value: "big"}}})
	if err != nil {
		b.Fatal(err)
	}
	// A handler takes the notes: unhandled, aos would keep each in its Inbox
	// and slow down as it grows.
	h, err := c.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Eval"}},
		Data: []byte(`Notes = 0 Handlers.add("note", Handlers.utils.hasMatchingTag("Action", "Note"), function () Notes = Notes + 1 end)`)})
	if err != nil {
		b.Fatal(err)
	}
	if r, err := c.Result(ctx, pid, h); err != nil || r.Failed() {
		b.Fatalf("handler: %v %+v", err, r)
	}
	// Written to the SU directly (its POST / takes a signed item as the MU's
	// does), eight at a time.
	direct := *c
	direct.MU = n.SUURL
	start := time.Now()
	var wg sync.WaitGroup
	var last string
	var mu sync.Mutex
	errc := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < messages; i += 8 {
				id, err := direct.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Note"}}, Data: []byte(fmt.Sprintf("note %d", i))})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				last = id
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	b.Logf("scheduled %d messages in %v", messages, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	latest, err := direct.Message(ctx, client.Message{Process: pid, Tags: []client.Tag{{Name: "Action", Value: "Note"}}, Data: []byte("last")})
	if err != nil {
		b.Fatal(err)
	}
	_ = last
	slow := *c
	slow.HTTP = &http.Client{Timeout: 30 * time.Minute}
	if _, err := slow.Result(ctx, pid, latest); err != nil {
		b.Fatal(err)
	}
	b.Logf("evaluated them in %v", time.Since(start).Round(time.Millisecond))

	br := newBrowser(b, n.ExplorerURL)
	page := n.ExplorerURL + "/#/process/" + pid
	open := func() (ready, results time.Duration) {
		if err := chromedp.Do(br.ctx, chromedp.Navigate("about:blank")); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := chromedp.Do(br.ctx, chromedp.Navigate(page), chromedp.WaitVisible(`#main[data-ready]`)); err != nil {
			b.Fatal(err)
		}
		ready = time.Since(t0)
		br.wait(`document.querySelectorAll('#schedule tbody tr[data-slot] .badge').length === 50`, "every row's result")
		return ready, time.Since(t0)
	}
	open() // the first load compiles the page's modules
	if got := br.evalString(`document.getElementById('slot-count').textContent`); got != fmt.Sprint(messages+3) {
		b.Fatalf("slot count %s, want %d", got, messages+3)
	}
	var readySum, resultsSum time.Duration
	runs := 0
	for b.Loop() {
		r, all := open()
		readySum += r
		resultsSum += all
		runs++
	}
	// Where the last load spent its time: the page's requests, slowest first.
	b.Logf("last load: %s", br.evalString(`performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
		.sort((a, b) => b.duration - a.duration).slice(0, 8)
		.map(e => e.name.replace(location.origin, '').slice(0, 60) + ' ' + Math.round(e.startTime) + '+' + Math.round(e.duration) + 'ms').join('; ')`))
	b.ReportMetric(float64(readySum.Microseconds())/1000/float64(runs), "ms-ready/op")
	b.ReportMetric(float64(resultsSum.Microseconds())/1000/float64(runs), "ms-results/op")
	br.noErrors("benchmark")
}
