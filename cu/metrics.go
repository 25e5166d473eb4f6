package cu

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the CU's counters in the Prometheus text format, kept by hand
// (no metrics library), as the SU does.
type metrics struct {
	requests, restores, coldStarts, checkpoints, published, evictions, timeouts, dryRuns                     atomic.Int64
	arweaveRestores, arweaveRejected, publishSkipped, dryRunHits, dryRunLimited, pastReplays, fuelExhausted  atomic.Int64
	attestationsSigned, attestationsPublished, verifyAgree, verifyDisagree, refusedUnpaid, charged, credited atomic.Int64

	mu       sync.Mutex
	messages int64
	seconds  float64
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) observe(d time.Duration) {
	m.mu.Lock()
	m.messages++
	m.seconds += d.Seconds()
	m.mu.Unlock()
}

// Evaluations is how many messages the CU has evaluated: scheduled, cron
// and dry-run (ao_cu_messages_evaluated_total).
func (s *Server) Evaluations() int64 {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return s.metrics.messages
}

// LiveMemory is the resident memory of the live instances, as the budget
// counts it (ao_cu_live_memory_bytes).
func (s *Server) LiveMemory() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, p := range s.procs {
		n += p.size
	}
	return n
}

// MemoryBudget is the budget in force (Config.MemoryBudget after defaults).
func (s *Server) MemoryBudget() int64 { return s.cfg.MemoryBudget }

func (s *Server) writeMetrics(w io.Writer) {
	m := s.metrics
	m.mu.Lock()
	msgs, secs := m.messages, m.seconds
	m.mu.Unlock()
	s.mu.Lock()
	var live int
	var mem uint64
	for _, p := range s.procs {
		if p.size > 0 {
			live++
			mem += p.size
		}
	}
	s.mu.Unlock()
	for _, c := range []struct {
		name, help, kind string
		v                any
	}{
		{"ao_cu_http_requests_total", "HTTP requests served.", "counter", m.requests.Load()},
		{"ao_cu_messages_evaluated_total", "Messages evaluated (including cron and dry-run).", "counter", msgs},
		{"ao_cu_evaluation_seconds_total", "Time spent evaluating messages.", "counter", secs},
		{"ao_cu_message_timeouts_total", "Evaluations abandoned at the wall-clock guard (not stored, retried later).", "counter", m.timeouts.Load()},
		{"ao_cu_fuel_exhausted_total", "Messages and dry-runs that failed at the deterministic fuel limit.", "counter", m.fuelExhausted.Load()},
		{"ao_cu_dry_runs_total", "Dry-runs evaluated.", "counter", m.dryRuns.Load()},
		{"ao_cu_dry_run_cache_hits_total", "Dry-runs answered from the result cache.", "counter", m.dryRunHits.Load()},
		{"ao_cu_dry_runs_rate_limited_total", "Dry-runs refused by the rate limit or a full dry-run queue.", "counter", m.dryRunLimited.Load()},
		{"ao_cu_checkpoints_total", "File checkpoints written.", "counter", m.checkpoints.Load()},
		{"ao_cu_checkpoints_published_total", "Checkpoint items uploaded.", "counter", m.published.Load()},
		{"ao_cu_checkpoints_publish_skipped_total", "Checkpoint uploads skipped because Q7 found them published.", "counter", m.publishSkipped.Load()},
		{"ao_cu_restores_total", "Instances restored from a checkpoint.", "counter", m.restores.Load()},
		{"ao_cu_arweave_restores_total", "Instances restored from a published Checkpoint item.", "counter", m.arweaveRestores.Load()},
		{"ao_cu_arweave_checkpoints_rejected_total", "Published checkpoints skipped (bad tags, download, gzip or hash).", "counter", m.arweaveRejected.Load()},
		{"ao_cu_past_replays_total", "Results of past messages recomputed on a throwaway instance (the live state was restored past them).", "counter", m.pastReplays.Load()},
		{"ao_cu_cold_starts_total", "Instances started from scratch (full replay).", "counter", m.coldStarts.Load()},
		{"ao_cu_evictions_total", "Instances evicted to keep the memory budget.", "counter", m.evictions.Load()},
		{"ao_cu_attestations_signed_total", "Attestation items signed.", "counter", m.attestationsSigned.Load()},
		{"ao_cu_attestations_published_total", "Attestation items uploaded to the gateway.", "counter", m.attestationsPublished.Load()},
		{"ao_cu_verifications_total{verdict=\"agree\"}", "Verifications of other CUs' attestations, by verdict.", "counter", m.verifyAgree.Load()},
		{"ao_cu_verifications_total{verdict=\"disagree\"}", "", "", m.verifyDisagree.Load()},
		{"ao_cu_refused_unpaid_total", "Requests refused with 402 for an insufficient balance.", "counter", m.refusedUnpaid.Load()},
		{"ao_cu_charged_total", "Token units charged for work.", "counter", m.charged.Load()},
		{"ao_cu_credited_total", "Token units credited from ledger payments.", "counter", m.credited.Load()},
		{"ao_cu_live_instances", "Live process instances.", "gauge", live},
		{"ao_cu_live_memory_bytes", "Resident memory of live instances (linear memory and rollback base), as the budget counts it.", "gauge", mem},
	} {
		if c.help == "" { // another series of the metric above
			fmt.Fprintf(w, "%s %v\n", c.name, c.v)
			continue
		}
		name, _, _ := strings.Cut(c.name, "{")
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, c.help, name, c.kind, c.name, c.v)
	}
}
