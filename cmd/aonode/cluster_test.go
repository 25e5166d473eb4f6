package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/internal/pgtest"
	"github.com/aonode/aonode/internal/s3test"
	"github.com/aonode/aonode/wallet"
)

// clusterUnit is one aonode process of a test cluster.
type clusterUnit struct {
	name string
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// kill stops the unit with SIGKILL, as a crash would.
func (u *clusterUnit) kill(t *testing.T) {
	t.Helper()
	if err := u.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-u.done
}

// startUnit runs `aonode ARGS --host 127.0.0.1 --port P --data DIR/NAME` and
// waits until its GET /healthz answers 200; "{url}" in args is replaced by
// the unit's own URL.
func startUnit(t *testing.T, bin, dir, name string, args ...string) *clusterUnit {
	t.Helper()
	port := freePort(t)
	u := &clusterUnit{name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "{url}", u.url)
	}
	args = append(args, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--data", filepath.Join(dir, name))
	u.cmd = exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	u.cmd.Stdout, u.cmd.Stderr = logf, logf
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.cmd.Wait(); logf.Close(); close(u.done) }()
	t.Cleanup(func() {
		u.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-u.done:
		case <-time.After(10 * time.Second):
			u.cmd.Process.Kill()
			<-u.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(u.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return u
			}
		}
		select {
		case <-u.done:
			b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			t.Fatalf("%s exited at start:\n%s", name, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			t.Fatalf("%s not healthy after 60 s:\n%s", name, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metric(t *testing.T, base, name string) int64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// TestClusterEndToEnd runs a cluster of real aonode processes on loopback: a
// gateway (index on PostgreSQL, bytes in S3), two SUs, three CUs sharing a
// PostgreSQL store and an S3 bucket of checkpoints, and two MUs sharing a
// PostgreSQL queue. 50 aos processes are spread over the SUs, and over the
// CUs by placement (the MUs and the CLI are given all three). Under load one CU is
// SIGKILLed: its processes continue on another CU from the checkpoints in S3,
// with the results and memory of a CU that evaluated everything, nothing
// lost. Then one MU is SIGKILLed mid fan-out of 200 messages: the other
// finishes it, each message delivered exactly once.
func TestClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModulePath(t, "aos2_0_4_32.wasm")
	s3 := s3test.Start(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	schema := func(name string) string { return pgtest.Schema(t, "cl_"+name) }

	gw := startUnit(t, bin, dir, "gateway", "gateway", "--database", schema("gw"), "--s3", s3.URL("cluster-gateway"), "--block-interval", "200ms")
	var sus []*clusterUnit
	for _, n := range []string{"a", "b"} {
		sus = append(sus, startUnit(t, bin, dir, "su-"+n, "su", "--gateway-url", gw.url, "--url", "{url}", "--database", schema("su_"+n)))
	}
	cuDB, ckpt := schema("cu"), s3.URL("cluster-checkpoints")
	var cus []*clusterUnit
	var cuURLs []string
	for i := range 3 {
		c := startUnit(t, bin, dir, fmt.Sprintf("cu-%d", i), "cu", "--gateway-url", gw.url, "--database", cuDB, "--s3", ckpt, "--checkpoint-every", "2")
		cus = append(cus, c)
		cuURLs = append(cuURLs, c.url)
	}
	// MUs and clients place processes over the three CUs (package placement).
	cuList := strings.Join(cuURLs, ",")
	muWallet := filepath.Join(dir, "mu-wallet.json")
	w, _ := wallet.Generate(wallet.Ed25519)
	if err := w.Save(muWallet); err != nil {
		t.Fatal(err)
	}
	muDB := schema("mu")
	var mus []*clusterUnit
	for i := range 2 {
		mus = append(mus, startUnit(t, bin, dir, fmt.Sprintf("mu-%d", i), "mu", "--gateway-url", gw.url, "--cu-url", cuList,
			"--wallet", muWallet, "--database", muDB, "--lease-ttl", "2s", "-v"))
	}

	key := filepath.Join(dir, "me.json")
	me, _ := wallet.Generate(wallet.Ed25519)
	if err := me.Save(key); err != nil {
		t.Fatal(err)
	}
	base := append(os.Environ(), "GATEWAY_URL="+gw.url, "CU_URL="+cuList, "AONODE_WALLET="+key)
	cliVia := func(mu, su int) func(args ...string) string {
		run := cliRunner(bin, append(base[:len(base):len(base)], "MU_URL="+mus[mu].url, "SU_URL="+sus[su].url))
		return func(args ...string) string {
			t.Helper()
			out, errs, code := run("", args...)
			if code != 0 {
				t.Fatalf("aonode %s: status %d\n%s%s", strings.Join(args, " "), code, out, errs)
			}
			return out
		}
	}
	start := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	phase("cluster up")
	module := cliVia(0, 0)("module", "publish", wasm)

	// 50 processes over two SUs, each pinned to a CU.
	const nproc = 50
	pids := make([]string, nproc)
	var wg sync.WaitGroup
	for g := range 5 {
		wg.Go(func() {
			for i := g; i < nproc; i += 5 {
				pids[i] = cliVia(i%2, i%2)("spawn", "--module", module, "--name", fmt.Sprintf("p%d", i))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	phase("50 processes spawned")
	// Load: every process counts its messages. Rounds run until the killed
	// CU has been replaced for some time.
	var sent [nproc]atomic.Int64
	round := func(r int) {
		var wg sync.WaitGroup
		for g := range 5 {
			wg.Go(func() {
				for i := g; i < nproc; i += 5 {
					got := cliVia((i+r)%2, i%2)("eval", "--process", pids[i], "N = (N or 0) + 1; return N")
					if n := sent[i].Add(1); got != strconv.FormatInt(n, 10) {
						t.Errorf("process %d round %d: N = %q, want %d", i, r, got, n)
					}
				}
			})
		}
		wg.Wait()
	}
	round(0)
	round(1)
	phase("two rounds")
	for i, c := range cus {
		if n := metric(t, c.url, "ao_cu_cold_starts_total"); n == 0 {
			t.Fatalf("CU %d evaluated no process: placement did not spread them", i)
		}
		if n := metric(t, c.url, "ao_cu_checkpoint_uploads_total"); n == 0 {
			t.Fatalf("CU %d uploaded no checkpoint", i)
		}
	}
	// SIGKILL CU 2 while a round is under way.
	killed := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		cus[2].kill(t)
		close(killed)
	}()
	round(2)
	<-killed
	round(3)
	phase("CU 2 killed, two more rounds")
	if t.Failed() {
		return
	}
	var restores, downloads int64
	for _, c := range cus[:2] {
		restores += metric(t, c.url, "ao_cu_restores_total")
		downloads += metric(t, c.url, "ao_cu_checkpoint_downloads_total")
	}
	if downloads == 0 || restores == 0 {
		t.Fatalf("the surviving CUs restored %d processes and downloaded %d checkpoints: want the killed CU's from S3", restores, downloads)
	}
	// The memory of the processes, some continued from the killed CU's
	// checkpoints, equals what the other survivor computes for them.
	stateOf := func(cu, pid string) string {
		resp, err := http.Get(cu + "/state/" + pid)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("state %s: %d %s", pid, resp.StatusCode, b)
		}
		h := sha256.Sum256(b)
		return hex.EncodeToString(h[:8]) + "@" + resp.Header.Get("Last-Ordinate")
	}
	for i := 0; i < nproc; i += 7 {
		if a, b := stateOf(cus[0].url, pids[i]), stateOf(cus[1].url, pids[i]); a != b {
			t.Fatalf("process %d: memory %s on CU 0, %s on CU 1", i, a, b)
		}
	}

	phase("memory compared")
	// Fan-out: process 0 sends 200 messages over 10 targets; MU 0 runs it
	// and is SIGKILLed in the middle.
	const total, ntargets = 200, 10
	targets := pids[1 : 1+ntargets]
	var lua strings.Builder
	lua.WriteString("local ts = {")
	for _, p := range targets {
		fmt.Fprintf(&lua, "%q,", p)
	}
	fmt.Fprintf(&lua, "}; for i = 0, %d do Send({ Target = ts[i %% %d + 1], Action = 'Fan', N = tostring(i) }) end; return 'fanned'", total-1, ntargets)
	delivered := func() map[string]int {
		seen := map[string]int{}
		for j, p := range targets {
			su := sus[(1+j)%2].url
			from := ""
			for {
				u := su + "/" + p + "?process-id=" + p + "&limit=1000"
				if from != "" {
					u += "&from=" + from
				}
				resp, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				var page struct {
					PageInfo struct {
						HasNextPage bool `json:"has_next_page"`
					} `json:"page_info"`
					Edges []struct {
						Cursor string `json:"cursor"`
						Node   struct {
							Message struct {
								Tags []struct{ Name, Value string } `json:"tags"`
							} `json:"message"`
						} `json:"node"`
					} `json:"edges"`
				}
				err = json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page.Edges {
					var action, n string
					for _, tg := range e.Node.Message.Tags {
						switch tg.Name {
						case "Action":
							action = tg.Value
						case "N":
							n = tg.Value
						}
					}
					if action == "Fan" {
						seen[n]++
					}
				}
				if !page.PageInfo.HasNextPage || len(page.Edges) == 0 {
					break
				}
				from = page.Edges[len(page.Edges)-1].Cursor
			}
		}
		return seen
	}
	fan := cliRunner(bin, append(base[:len(base):len(base)], "MU_URL="+mus[0].url, "SU_URL="+sus[0].url))
	go fan("", "eval", "--process", pids[0], lua.String())
	deadline := time.Now().Add(2 * time.Minute)
	for len(delivered()) < 10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	mus[0].kill(t)
	before := len(delivered())
	t.Logf("killed MU 0 after %d of %d deliveries", before, total)
	if before >= total {
		t.Fatal("the fan-out finished before the kill; nothing tested")
	}
	deadline = time.Now().Add(3 * time.Minute)
	for len(delivered()) < total && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if d := metric(t, mus[1].url, "mu_queue_depth"); d != 0 {
		for time.Now().Before(deadline) && metric(t, mus[1].url, "mu_queue_depth") != 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	phase("fan-out completed")
	if os.Getenv("AONODE_CLUSTER_DEBUG") != "" {
		resp, _ := http.Get(mus[1].url + "/metrics")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("MU 1 metrics:\n%s", b)
		log, _ := os.ReadFile(filepath.Join(dir, "mu-1.log"))
		t.Logf("MU 1 log:\n%s", log)
	}
	seen := delivered()
	for i := range total {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Fatalf("message N=%d delivered %d times, want exactly once (%d distinct)", i, c, len(seen))
		}
	}
}
