package mu

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the MU's Prometheus counters (GET /metrics).
type metrics struct {
	pending  atomic.Int64
	retries  atomic.Int64
	monitors atomic.Int64
	// monitorsFailing counts monitors whose last poll failed (backing off).
	monitorsFailing atomic.Int64

	mu       sync.Mutex
	doneN    map[string]int64
	failedN  map[string]int64
	stepSecs map[string]float64
	stepN    map[string]int64
	requests map[[2]string]int64
}

func newMetrics() *metrics {
	return &metrics{doneN: map[string]int64{}, failedN: map[string]int64{}, stepSecs: map[string]float64{}, stepN: map[string]int64{}, requests: map[[2]string]int64{}}
}

func (m *metrics) done(kind string)   { m.mu.Lock(); m.doneN[kind]++; m.mu.Unlock() }
func (m *metrics) failed(kind string) { m.mu.Lock(); m.failedN[kind]++; m.mu.Unlock() }

func (m *metrics) observeStep(kind string, d time.Duration, _ error) {
	m.mu.Lock()
	m.stepSecs[kind] += d.Seconds()
	m.stepN[kind]++
	m.mu.Unlock()
}

func (m *metrics) request(route string, code int) {
	m.mu.Lock()
	m.requests[[2]string{route, fmt.Sprint(code)}]++
	m.mu.Unlock()
}

func sortedKeys[V any](mp map[string]V) []string {
	ks := make([]string, 0, len(mp))
	for k := range mp {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (m *metrics) writeTo(w io.Writer) {
	fmt.Fprintf(w, "# HELP mu_tasks_pending Crank steps waiting or running.\n# TYPE mu_tasks_pending gauge\nmu_tasks_pending %d\n", m.pending.Load())
	fmt.Fprintf(w, "# HELP mu_task_retries_total Failed step attempts that will be retried.\n# TYPE mu_task_retries_total counter\nmu_task_retries_total %d\n", m.retries.Load())
	fmt.Fprintf(w, "# HELP mu_monitors Cron-monitored processes.\n# TYPE mu_monitors gauge\nmu_monitors %d\n", m.monitors.Load())
	fmt.Fprintf(w, "# HELP mu_monitors_failing Monitored processes whose last poll failed (polled with back-off).\n# TYPE mu_monitors_failing gauge\nmu_monitors_failing %d\n", m.monitorsFailing.Load())
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(w, "# HELP mu_tasks_done_total Crank steps completed, by kind.\n# TYPE mu_tasks_done_total counter\n")
	for _, k := range sortedKeys(m.doneN) {
		fmt.Fprintf(w, "mu_tasks_done_total{kind=%q} %d\n", k, m.doneN[k])
	}
	fmt.Fprintf(w, "# HELP mu_tasks_failed_total Crank steps that failed for good, by kind.\n# TYPE mu_tasks_failed_total counter\n")
	for _, k := range sortedKeys(m.failedN) {
		fmt.Fprintf(w, "mu_tasks_failed_total{kind=%q} %d\n", k, m.failedN[k])
	}
	fmt.Fprintf(w, "# HELP mu_step_seconds Time spent in step attempts, by kind.\n# TYPE mu_step_seconds summary\n")
	for _, k := range sortedKeys(m.stepN) {
		fmt.Fprintf(w, "mu_step_seconds_sum{kind=%q} %g\nmu_step_seconds_count{kind=%q} %d\n", k, m.stepSecs[k], k, m.stepN[k])
	}
	fmt.Fprintf(w, "# HELP mu_http_requests_total HTTP requests, by route and status.\n# TYPE mu_http_requests_total counter\n")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(w, "mu_http_requests_total{route=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
}
