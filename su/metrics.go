package su

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are the SU's counters, written in the Prometheus text format by
// GET /metrics. They are kept by hand so that the SU needs no metrics library.
type Metrics struct {
	scheduled     atomic.Int64 // items committed
	commits       atomic.Int64
	commitErrors  atomic.Int64
	commitItems   atomic.Int64
	commitNanos   atomic.Int64
	signs         atomic.Int64
	signNanos     atomic.Int64
	uploads       atomic.Int64
	uploadErrors  atomic.Int64
	outboxPending atomic.Int64
	height        atomic.Int64

	mu       sync.Mutex
	requests map[string]int64 // "route code" -> count
	gauges   func() map[string]float64
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics { return &Metrics{requests: make(map[string]int64)} }

func (m *Metrics) observeSign(d time.Duration) {
	m.signs.Add(1)
	m.signNanos.Add(int64(d))
}

func (m *Metrics) observeCommit(d time.Duration, items int, err error) {
	if err != nil {
		m.commitErrors.Add(1)
		return
	}
	m.commits.Add(1)
	m.commitItems.Add(int64(items))
	m.commitNanos.Add(int64(d))
}

func (m *Metrics) observeRequest(route string, code int) {
	m.mu.Lock()
	m.requests[fmt.Sprintf("%s\x00%d", route, code)]++
	m.mu.Unlock()
}

// WriteTo writes the metrics in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var n int64
	p := func(name, typ, help string, v float64) {
		k, _ := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", name, help, name, typ, name, v)
		n += int64(k)
	}
	p("su_scheduled_total", "counter", "Items (processes, messages, assignments) committed to the schedule.", float64(m.scheduled.Load()))
	p("su_commits_total", "counter", "Group commits.", float64(m.commits.Load()))
	p("su_commit_errors_total", "counter", "Failed group commits.", float64(m.commitErrors.Load()))
	p("su_commit_items_total", "counter", "Items written by group commits.", float64(m.commitItems.Load()))
	p("su_commit_seconds_total", "counter", "Time spent in group commits.", time.Duration(m.commitNanos.Load()).Seconds())
	p("su_sign_total", "counter", "Assignments signed.", float64(m.signs.Load()))
	p("su_sign_seconds_total", "counter", "Time spent signing assignments.", time.Duration(m.signNanos.Load()).Seconds())
	p("su_uploads_total", "counter", "Items published to the permanent store.", float64(m.uploads.Load()))
	p("su_upload_errors_total", "counter", "Failed upload attempts (retried).", float64(m.uploadErrors.Load()))
	p("su_outbox_pending", "gauge", "Items waiting in the outbox at the last publisher pass.", float64(m.outboxPending.Load()))
	p("su_block_height", "gauge", "Block height used for new assignments.", float64(m.height.Load()))
	m.mu.Lock()
	gauges := m.gauges
	reqs := make(map[string]int64, len(m.requests))
	for k, v := range m.requests {
		reqs[k] = v
	}
	m.mu.Unlock()
	if gauges != nil {
		for name, v := range gauges() {
			p(name, "gauge", "Current value.", v)
		}
	}
	k, _ := fmt.Fprintf(w, "# HELP su_http_requests_total HTTP requests by route and status.\n# TYPE su_http_requests_total counter\n")
	n += int64(k)
	for key, v := range reqs {
		var route string
		var code int
		for i := range len(key) {
			if key[i] == 0 {
				route = key[:i]
				fmt.Sscanf(key[i+1:], "%d", &code)
			}
		}
		k, _ := fmt.Fprintf(w, "su_http_requests_total{route=%q,code=\"%d\"} %d\n", route, code, v)
		n += int64(k)
	}
	return n, nil
}
