package cu

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/internal/objstore"
	"github.com/aonode/aonode/internal/pgtest"
	"github.com/aonode/aonode/internal/s3test"
)

// clusterConfig is a CU config on a fresh shared store and bucket.
func clusterConfig(t testing.TB) (Config, *s3test.Server) {
	t.Helper()
	dsn := pgtest.Schema(t, "cu_cluster")
	srv := s3test.Start(t)
	obj, err := objstore.Open(context.Background(), srv.URL("cu-checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	return Config{Database: dsn, Checkpoints: obj}, srv
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClusterHandover runs two CUs on one PostgreSQL store and one bucket: B
// answers /result for what A evaluated without evaluating anything; A is
// drained (its process checkpointed to object storage, its health check
// failing) and B continues the process from A's checkpoint, without replay,
// with the results and memory of a CU that evaluated everything itself.
func TestClusterHandover(t *testing.T) {
	n := newNetwork(t)
	cfg, _ := clusterConfig(t)
	a, aURL := n.newCU(cfg, false)
	b, bURL := n.newCU(cfg, false)
	_, refURL := n.newCU(Config{}, false)
	pid := n.spawn()
	var msgs []string
	for i := range 3 {
		msgs = append(msgs, n.eval(pid, fmt.Sprintf("T = (T or 0) + %d; return T", i+1)))
	}
	if got := result(t, aURL, pid, msgs[2]).data(); got != "6" {
		t.Fatalf("A: T = %q, want 6", got)
	}
	for _, m := range msgs {
		if got, want := result(t, bURL, pid, m).data(), result(t, refURL, pid, m).data(); got != want {
			t.Fatalf("B's result of %s: %q, want %q", m, got, want)
		}
	}
	if b.metrics.coldStarts.Load() != 0 || b.metrics.restores.Load() != 0 {
		t.Fatalf("B evaluated (cold starts %d, restores %d): it should have read A's results", b.metrics.coldStarts.Load(), b.metrics.restores.Load())
	}

	if code, body := post(t, aURL+"/drain"); code != 200 || !strings.Contains(body, `"checkpointed":1`) {
		t.Fatalf("drain: %d %s", code, body)
	}
	if code := getJSON(t, aURL+"/healthz", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("A's health after drain: %d, want 503", code)
	}
	if code := getJSON(t, bURL+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("B's health: %d, want 200", code)
	}
	if a.cl.uploads.Load() == 0 {
		t.Fatal("A uploaded no checkpoint")
	}

	next := n.eval(pid, "T = T * 10; return T")
	if got := result(t, bURL, pid, next).data(); got != "60" {
		t.Fatalf("B after the handover: T = %q, want 60", got)
	}
	if b.cl.downloads.Load() != 1 || b.metrics.restores.Load() != 1 || b.metrics.coldStarts.Load() != 0 {
		t.Fatalf("B downloads %d restores %d cold starts %d: want it restored from A's checkpoint",
			b.cl.downloads.Load(), b.metrics.restores.Load(), b.metrics.coldStarts.Load())
	}
	if got, want := result(t, refURL, pid, next).data(), "60"; got != want {
		t.Fatalf("reference: %q", got)
	}
	if hb, href := stateHash(t, bURL, pid), stateHash(t, refURL, pid); hb != href {
		t.Fatalf("memory after the handover %s, reference %s", hb, href)
	}
	resp, err := http.Get(bURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), "ao_cu_checkpoint_downloads_total 1") {
		t.Fatalf("metrics lack the download:\n%s", m)
	}
}

// TestClusterHealthStorageDown: a CU's health check fails when its object
// storage is down.
func TestClusterHealthStorageDown(t *testing.T) {
	n := newNetwork(t)
	cfg, s3 := clusterConfig(t)
	_, url := n.newCU(cfg, false)
	if code := getJSON(t, url+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("health %d, want 200", code)
	}
	s3.Kill()
	if code := getJSON(t, url+"/healthz", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("health with S3 down %d, want 503", code)
	}
}

// sharedBackend, set by TestSharedStore, makes newCU put each CU on its own
// PostgreSQL schema and bucket instead of SQLite.
var sharedBackend func(t testing.TB, dataDir string) Config

// TestSharedStore runs CU tests that touch every table (results, cron,
// checkpoints, attestations, charges, credits, usage) on PostgreSQL and
// object storage.
func TestSharedStore(t *testing.T) {
	srv := s3test.Start(t)
	// One schema and bucket per data directory: a CU restarted on its
	// directory finds its store again.
	byDir := map[string]Config{}
	sharedBackend = func(t testing.TB, dataDir string) Config {
		if c, ok := byDir[dataDir]; ok {
			return c
		}
		obj, err := objstore.Open(context.Background(), srv.URL(fmt.Sprintf("cu-shared-%d", len(byDir))))
		if err != nil {
			t.Fatal(err)
		}
		byDir[dataDir] = Config{Database: pgtest.Schema(t, "cu_shared"), Checkpoints: obj}
		return byDir[dataDir]
	}
	defer func() { sharedBackend = nil }()
	t.Run("EndToEnd", TestEndToEnd)
	t.Run("Cron", TestCron)
	t.Run("CheckpointRestore", TestCheckpointRestore)
	t.Run("AttestationsAgree", TestAttestationsAgree)
	t.Run("PayPerUse", TestPayPerUse)
}

// BenchmarkCluster measures what a cluster adds per message and per
// checkpoint: evaluating and storing results (20 aos messages a round) on
// SQLite vs PostgreSQL, a checkpoint written locally vs also uploaded to S3,
// and a restore from the local file vs by another CU that downloads it.
//
//	go test ./cu -run '^$' -bench Cluster -benchtime 10x
func BenchmarkCluster(b *testing.B) {
	for _, mode := range []string{"local", "shared"} {
		b.Run(mode, func(b *testing.B) {
			n := newNetwork(b)
			cfg := Config{MemoryBudget: 1 << 40, CheckpointEvery: -1}
			if mode == "shared" {
				cfg, _ = clusterConfig(b)
				cfg.MemoryBudget, cfg.CheckpointEvery = 1<<40, -1
			}
			a, aURL := n.newCU(cfg, false)
			other, _ := n.newCU(cfg, false)
			if mode == "local" {
				other = a // restores from its own file
			}
			pid := n.spawn()
			result(b, aURL, pid, n.eval(pid, "X = 1"))
			ctx := context.Background()
			const perRound = 20
			var eval, ckpt, restore time.Duration
			for i := range b.N {
				var last string
				for j := range perRound {
					last = n.eval(pid, fmt.Sprintf("X = %d; return X", i*perRound+j))
				}
				t0 := time.Now()
				result(b, aURL, pid, last)
				eval += time.Since(t0)

				p, err := a.process(ctx, pid)
				if err != nil {
					b.Fatal(err)
				}
				p.mu.Lock()
				t0 = time.Now()
				if err := a.checkpoint(ctx, p); err != nil {
					b.Fatal(err)
				}
				ckpt += time.Since(t0)
				if other == a {
					p.inst.Close(ctx)
					p.inst = nil
				}
				p.mu.Unlock()

				q, err := other.process(ctx, pid)
				if err != nil {
					b.Fatal(err)
				}
				q.mu.Lock()
				if q.inst != nil {
					q.inst.Close(ctx)
					q.inst = nil
				}
				t0 = time.Now()
				if err := other.ensureInstance(ctx, q, latest); err != nil {
					b.Fatal(err)
				}
				restore += time.Since(t0)
				if q.inst != nil && other != a {
					q.inst.Close(ctx)
					q.inst = nil
				}
				q.mu.Unlock()
			}
			if mode == "shared" && other.cl.downloads.Load() != int64(b.N) {
				b.Fatalf("%d downloads for %d rounds", other.cl.downloads.Load(), b.N)
			}
			b.ReportMetric(float64(eval.Microseconds())/float64(b.N*perRound)/1000, "eval-ms/msg")
			b.ReportMetric(float64(ckpt.Microseconds())/float64(b.N)/1000, "checkpoint-ms")
			b.ReportMetric(float64(restore.Microseconds())/float64(b.N)/1000, "restore-ms")
		})
	}
}
