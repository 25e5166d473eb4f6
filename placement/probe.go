package placement

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// probe reads the CU's GET / and records its health and prices.
func (p *Placer) probe(ctx context.Context, u string) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ProbeTimeout)
	defer cancel()
	info, err := p.fetchInfo(ctx, u)
	if err == nil {
		err = p.checkHealth(ctx, u)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cus[u]
	if c == nil {
		return // removed meanwhile
	}
	if err == nil && !c.explicit && c.owner != "" && info.Address != c.owner {
		err = fmt.Errorf("the CU at %s says it is %q, but the price record is signed by %s", u, info.Address, c.owner)
	}
	now := p.cfg.Now()
	wasUp, wasProbed := c.up, c.probed
	c.probed = true
	if err != nil {
		c.failures++
		c.lastErr = err.Error()
		c.next = now.Add(p.backoff(c.failures))
		if c.up {
			c.up = false
			p.demotions.Add(1)
		}
		if wasUp || !wasProbed {
			p.log.Warn("placement: CU not answering; probing with back-off", "cu", u, "err", err)
		}
		p.rebuild()
		return
	}
	c.info, c.up, c.failures, c.lastErr = &info, true, 0, ""
	c.price = info.Prices.messagePrice()
	c.next = now.Add(p.cfg.ProbeInterval)
	if !wasUp {
		p.log.Info("placement: CU answers again", "cu", u)
	}
	p.rebuild()
}

// checkHealth asks the CU's GET /healthz, which a drained CU (or one whose
// storage is down) answers 503: it then takes no processes. A CU without the
// route (404, e.g. a reference CU) is taken as healthy.
func (p *Placer) checkHealth(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 500 {
		return fmt.Errorf("GET /healthz: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

func (p *Placer) fetchInfo(ctx context.Context, u string) (Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/", nil)
	if err != nil {
		return Info{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return Info{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxInfoBytes+1))
	if err != nil {
		return Info{}, fmt.Errorf("reading GET /: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Info{}, fmt.Errorf("GET /: HTTP %d", resp.StatusCode)
	}
	return ParseInfo(b)
}

// discoveryPages bounds the records read per discovery (100 per page).
const discoveryPages = 10

const priceQuery = `query ($after: String) {
  transactions(tags: [{ name: "Type", values: ["Compute-Price"] }, { name: "Data-Protocol", values: ["ao"] }],
    sort: HEIGHT_DESC, first: 100, after: $after) {
    pageInfo { hasNextPage }
    edges { cursor node { id owner { address } tags { name value } block { height timestamp } } }
  }
}`

// discover reads the gateway's Compute-Price records and updates the table:
// each owner's newest unexpired record adds (or updates) its CU; a
// discovered CU whose record is gone or expired leaves (explicit ones stay).
func (p *Placer) discover(ctx context.Context) error {
	recs, err := p.readRecords(ctx)
	if err != nil {
		return err
	}
	now := p.cfg.Now()
	live := map[string]bool{}
	for _, r := range newestRecords(recs) {
		if r.Expired(now) {
			continue
		}
		live[r.URL] = true
		if _, err := p.add(r.URL, false, &r); err != nil {
			p.log.Warn("placement: unusable price record", "owner", r.Owner, "err", err)
		}
	}
	p.mu.Lock()
	for u, c := range p.cus {
		if !c.explicit && !live[u] {
			delete(p.cus, u)
		}
	}
	p.rebuild()
	p.mu.Unlock()
	return nil
}

// found is a record with its place in the gateway's order.
type found struct {
	Record
	height int64 // -1: not yet in a block (newest)
}

// newestRecords keeps each owner's newest record: the highest block (an item
// not yet in a block is newest), then the latest Time.
func newestRecords(recs []found) []Record {
	best := map[string]found{}
	var order []string
	for _, r := range recs {
		b, ok := best[r.Owner]
		if !ok {
			order = append(order, r.Owner)
		}
		if !ok || newer(r, b) {
			best[r.Owner] = r
		}
	}
	out := make([]Record, 0, len(order))
	for _, o := range order {
		out = append(out, best[o].Record)
	}
	return out
}

func newer(a, b found) bool {
	ha, hb := a.height, b.height
	if ha < 0 {
		ha = 1 << 62
	}
	if hb < 0 {
		hb = 1 << 62
	}
	if ha != hb {
		return ha > hb
	}
	return a.Time.After(b.Time)
}

type gqlPage struct {
	Data struct {
		Transactions struct {
			PageInfo struct {
				HasNextPage bool `json:"hasNextPage"`
			} `json:"pageInfo"`
			Edges []struct {
				Cursor string `json:"cursor"`
				Node   struct {
					ID    string `json:"id"`
					Owner struct {
						Address string `json:"address"`
					} `json:"owner"`
					Tags  []Tag `json:"tags"`
					Block *struct {
						Height    int64 `json:"height"`
						Timestamp int64 `json:"timestamp"`
					} `json:"block"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"transactions"`
	} `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// maxPageBytes bounds one GraphQL answer.
const maxPageBytes = 8 << 20

// parseRecordsPage reads one GraphQL page of Compute-Price records; records
// that do not parse are skipped (anyone can publish one), the page's
// structure must be right.
func parseRecordsPage(b []byte, now time.Time) (recs []found, next string, err error) {
	var pg gqlPage
	if err := json.Unmarshal(b, &pg); err != nil {
		return nil, "", fmt.Errorf("GraphQL answer: %w", err)
	}
	if len(pg.Errors) > 0 {
		return nil, "", fmt.Errorf("GraphQL: %s", pg.Errors[0].Message)
	}
	edges := pg.Data.Transactions.Edges
	for _, e := range edges {
		var bt time.Time
		h := int64(-1)
		if e.Node.Block != nil {
			h = e.Node.Block.Height
			bt = time.Unix(e.Node.Block.Timestamp, 0)
		}
		r, err := ParseRecord(e.Node.Owner.Address, e.Node.Tags, bt, now)
		if err != nil {
			continue
		}
		recs = append(recs, found{Record: r, height: h})
	}
	if pg.Data.Transactions.PageInfo.HasNextPage && len(edges) > 0 {
		next = edges[len(edges)-1].Cursor
	}
	return recs, next, nil
}

func (p *Placer) readRecords(ctx context.Context) ([]found, error) {
	var all []found
	var after any
	for range discoveryPages {
		body, _ := json.Marshal(map[string]any{"query": priceQuery, "variables": map[string]any{"after": after}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.GatewayURL+"/graphql", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := p.http.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GraphQL: HTTP %d", resp.StatusCode)
		}
		recs, next, err := parseRecordsPage(b, p.cfg.Now())
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
		if next == "" {
			return all, nil
		}
		after = next
	}
	if len(all) == 0 {
		return nil, errors.New("no records")
	}
	return all, nil
}

// CU is one row of the placement table.
type CU struct {
	URL       string    `json:"url"`
	Address   string    `json:"address,omitempty"`
	Healthy   bool      `json:"healthy"`
	Probed    bool      `json:"probed"`
	Source    string    `json:"source"` // "flag" or "gateway"
	Prices    Prices    `json:"prices"`
	Processes int       `json:"processes"` // tracked processes it last served
	Failures  int       `json:"failures,omitempty"`
	NextProbe time.Time `json:"nextProbe"`
	LastError string    `json:"lastError,omitempty"`
}

// Table is the placement table: the CUs in choice order (healthy cheapest
// first), the pins, and the counters.
type Table struct {
	CUs       []CU              `json:"cus"`
	Pins      map[string]string `json:"pins"`
	Tracked   int               `json:"trackedProcesses"`
	Failovers int64             `json:"failovers"`
	Demotions int64             `json:"demotions"`
}

// Table returns a snapshot of the placement table.
func (p *Placer) Table() Table {
	per, n := p.counts()
	v := p.view.Load()
	var order []string
	for _, g := range v.groups {
		for _, r := range g {
			order = append(order, r.url)
		}
	}
	for _, r := range v.down {
		order = append(order, r.url)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := Table{Pins: map[string]string{}, Tracked: n, Failovers: p.failovers.Load(), Demotions: p.demotions.Load()}
	for k, u := range p.pins {
		t.Pins[k] = u
	}
	for _, u := range order {
		c := p.cus[u]
		if c == nil {
			continue
		}
		row := CU{URL: u, Healthy: c.up, Probed: c.probed, Source: "gateway", Processes: per[u], Failures: c.failures,
			NextProbe: c.next, LastError: c.lastErr}
		if c.explicit {
			row.Source = "flag"
		}
		switch {
		case c.info != nil:
			row.Address, row.Prices = c.info.Address, c.info.Prices
		case c.record != nil:
			row.Address, row.Prices = c.record.Owner, c.record.Prices
		default:
			row.Prices = Prices{Message: "0", Gigafuel: "0", Verification: "0", DryRun: "0"}
		}
		t.CUs = append(t.CUs, row)
	}
	return t
}

// WriteMetrics writes the placement counters in Prometheus text format,
// each name prefixed by prefix (e.g. "mu_" or "router_").
func (p *Placer) WriteMetrics(w io.Writer, prefix string) {
	t := p.Table()
	fmt.Fprintf(w, "# HELP %[1]splacement_processes Tracked processes by the CU that last served them.\n# TYPE %[1]splacement_processes gauge\n", prefix)
	for _, c := range t.CUs {
		fmt.Fprintf(w, "%splacement_processes{cu=%q} %d\n", prefix, c.URL, c.Processes)
	}
	fmt.Fprintf(w, "# HELP %[1]splacement_cu_healthy Whether each known CU is healthy (1) or demoted (0).\n# TYPE %[1]splacement_cu_healthy gauge\n", prefix)
	for _, c := range t.CUs {
		h := 0
		if c.Healthy {
			h = 1
		}
		fmt.Fprintf(w, "%splacement_cu_healthy{cu=%q} %d\n", prefix, c.URL, h)
	}
	fmt.Fprintf(w, "# HELP %[1]splacement_failovers_total Requests answered by a CU other than the process's first choice.\n# TYPE %[1]splacement_failovers_total counter\n%[1]splacement_failovers_total %[2]d\n", prefix, t.Failovers)
	fmt.Fprintf(w, "# HELP %[1]splacement_demotions_total Times a CU was demoted after failing.\n# TYPE %[1]splacement_demotions_total counter\n%[1]splacement_demotions_total %[2]d\n", prefix, t.Demotions)
}

// Healthy reports how many CUs are healthy.
func (p *Placer) Healthy() int {
	n := 0
	for _, g := range p.view.Load().groups {
		n += len(g)
	}
	return n
}
