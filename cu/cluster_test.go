package cu

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aonode/aonode/internal/objstore"
	"github.com/aonode/aonode/internal/pgtest"
	"github.com/aonode/aonode/internal/s3test"
)

// clusterConfig is a CU config on a fresh shared store and bucket.
func clusterConfig(t *testing.T) (Config, *s3test.Server) {
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
