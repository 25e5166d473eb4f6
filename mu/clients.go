package mu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SchedulerClient writes to Scheduler Units. suURL is the located SU's base
// URL; an in-process adapter may ignore it for its own SU.
type SchedulerClient interface {
	// Write posts a signed item (POST /) and returns the id the SU answers.
	// Writing the same item again must return the same id (the SU is idempotent).
	Write(ctx context.Context, suURL string, item []byte) (string, error)
	// Assign assigns txID to process pid (POST /?process-id=&assign=) and
	// returns the assignment id; assigning the same tx again returns the same id.
	Assign(ctx context.Context, suURL, pid, txID string, baseLayer bool, exclude []string) (string, error)
}

// ComputeClient reads results from a Compute Unit (units.md §5.1).
type ComputeClient interface {
	// Result is GET /result/{msgID}?process-id={pid}, as raw result JSON.
	Result(ctx context.Context, pid, msgID string) ([]byte, error)
	// Cron is GET /cron/{pid}?from=&limit=, as raw connection JSON.
	Cron(ctx context.Context, pid, from string, limit int) ([]byte, error)
	// LatestCursor is the cursor of the newest result (GET
	// /results/{pid}?sort=DESC&limit=1), "" when there is none.
	LatestCursor(ctx context.Context, pid string) (string, error)
}

// GatewayClient reads and writes the permanent store (gateway.md).
type GatewayClient interface {
	// Tags returns the tags of transaction id; ErrNotFound if it is unknown.
	Tags(ctx context.Context, id string) ([]Tag, error)
	// SchedulerLocation returns the newest Scheduler-Location record of the
	// SU wallet address: its Url and Time-To-Live (gateway.md Q3).
	SchedulerLocation(ctx context.Context, address string) (string, time.Duration, error)
	// Upload stores a signed item (POST /tx/arweave).
	Upload(ctx context.Context, item []byte) error
}

// ErrNotFound is returned when the gateway does not know a transaction or an
// SU has no Scheduler-Location record.
var ErrNotFound = errors.New("mu: not found")

// HTTPError is a non-2xx answer from another unit.
type HTTPError struct {
	URL    string
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.URL, e.Status, e.Body)
}

// httpDo sends a request and reads a bounded body, following 307/308 redirects
// by hand (re-sending the body) as the reference MU does with redirect: manual.
func httpDo(ctx context.Context, c *http.Client, method, u string, body []byte, hdr map[string]string) (int, http.Header, []byte, error) {
	for hop := 0; ; hop++ {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, r)
		if err != nil {
			return 0, nil, nil, err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%s %s: %w", method, u, err)
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc := resp.Header.Get("Location")
			if loc == "" || hop >= 5 {
				return resp.StatusCode, resp.Header, b, &HTTPError{URL: u, Status: resp.StatusCode, Body: "redirect without usable Location"}
			}
			base, _ := url.Parse(u)
			next, err := base.Parse(loc)
			if err != nil {
				return 0, nil, nil, fmt.Errorf("%s: bad Location %q: %w", u, loc, err)
			}
			u = next.String()
			continue
		}
		return resp.StatusCode, resp.Header, b, nil
	}
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
	}
}

func trimBody(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

// HTTPScheduler is a SchedulerClient over HTTP.
type HTTPScheduler struct{ Client *http.Client }

// NewHTTPScheduler returns a SchedulerClient with its own connection pool.
func NewHTTPScheduler() *HTTPScheduler { return &HTTPScheduler{Client: newHTTPClient()} }

var octet = map[string]string{"Content-Type": "application/octet-stream", "Accept": "application/json"}

func (h *HTTPScheduler) post(ctx context.Context, u string, body []byte) (string, error) {
	code, _, b, err := httpDo(ctx, h.Client, http.MethodPost, u, body, octet)
	if err != nil {
		return "", fmt.Errorf("mu: SU write: %w", err)
	}
	if code/100 != 2 {
		return "", &HTTPError{URL: u, Status: code, Body: trimBody(b)}
	}
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		return "", fmt.Errorf("mu: SU %s answered %q, no id", u, trimBody(b))
	}
	return r.ID, nil
}

// Write posts the item to the SU.
func (h *HTTPScheduler) Write(ctx context.Context, suURL string, item []byte) (string, error) {
	return h.post(ctx, strings.TrimRight(suURL, "/")+"/", item)
}

// Assign posts an assignment to the SU.
func (h *HTTPScheduler) Assign(ctx context.Context, suURL, pid, txID string, baseLayer bool, exclude []string) (string, error) {
	q := "process-id=" + url.QueryEscape(pid) + "&assign=" + url.QueryEscape(txID)
	if baseLayer {
		q += "&base-layer"
	}
	if len(exclude) > 0 {
		q += "&exclude=" + url.QueryEscape(strings.Join(exclude, ","))
	}
	return h.post(ctx, strings.TrimRight(suURL, "/")+"/?"+q, []byte{})
}

// HTTPCompute is a ComputeClient over HTTP.
type HTTPCompute struct {
	URL    string
	Client *http.Client
}

// NewHTTPCompute returns a ComputeClient for the CU at base.
func NewHTTPCompute(base string) *HTTPCompute {
	return &HTTPCompute{URL: strings.TrimRight(base, "/"), Client: newHTTPClient()}
}

func (c *HTTPCompute) get(ctx context.Context, path string) ([]byte, error) {
	u := c.URL + path
	code, _, b, err := httpDo(ctx, c.Client, http.MethodGet, u, nil, map[string]string{"Accept": "application/json"})
	if err != nil {
		return nil, fmt.Errorf("mu: CU: %w", err)
	}
	if code/100 != 2 {
		return nil, &HTTPError{URL: u, Status: code, Body: trimBody(b)}
	}
	if code == http.StatusAccepted { // busy: "Evaluation ... is in progress"
		return nil, &HTTPError{URL: u, Status: code, Body: trimBody(b)}
	}
	return b, nil
}

// Result reads a message's result; no-busy asks the CU to wait rather than answer 202.
func (c *HTTPCompute) Result(ctx context.Context, pid, msgID string) ([]byte, error) {
	return c.get(ctx, "/result/"+url.PathEscape(msgID)+"?process-id="+url.QueryEscape(pid)+"&no-busy=1")
}

// Cron reads a page of cron results.
func (c *HTTPCompute) Cron(ctx context.Context, pid, from string, limit int) ([]byte, error) {
	p := "/cron/" + url.PathEscape(pid)
	v := url.Values{}
	if from != "" {
		v.Set("from", from)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return c.get(ctx, p)
}

// LatestCursor reads the newest result's cursor.
func (c *HTTPCompute) LatestCursor(ctx context.Context, pid string) (string, error) {
	b, err := c.get(ctx, "/results/"+url.PathEscape(pid)+"?sort=DESC&limit=1")
	if err != nil {
		return "", err
	}
	page, err := ParseCronPage(b)
	if err != nil {
		return "", err
	}
	if len(page.Edges) == 0 {
		return "", nil
	}
	return page.Edges[len(page.Edges)-1].Cursor, nil
}

// CronPage is the CU's /cron (and /results) connection.
type CronPage struct {
	HasNextPage bool
	Edges       []CronEdge
}

// CronEdge is one evaluation's outputs and its cursor.
type CronEdge struct {
	Cursor string
	Result *Result
}

// ParseCronPage decodes {"pageInfo":{"hasNextPage"},"edges":[{"node","cursor"}]}.
func ParseCronPage(b []byte) (*CronPage, error) {
	var raw struct {
		PageInfo struct {
			HasNextPage bool `json:"hasNextPage"`
		} `json:"pageInfo"`
		Edges []struct {
			Node   json.RawMessage `json:"node"`
			Cursor string          `json:"cursor"`
		} `json:"edges"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("mu: cron page JSON: %w", err)
	}
	p := &CronPage{HasNextPage: raw.PageInfo.HasNextPage}
	for _, e := range raw.Edges {
		if e.Cursor == "" {
			return nil, errors.New("mu: cron page: edge without cursor")
		}
		r := &Result{}
		if !isNull(e.Node) {
			var err error
			if r, err = ParseResult(e.Node); err != nil {
				return nil, err
			}
		}
		p.Edges = append(p.Edges, CronEdge{Cursor: e.Cursor, Result: r})
	}
	return p, nil
}

// HTTPGateway is a GatewayClient over an Arweave-compatible gateway's HTTP
// and GraphQL API.
type HTTPGateway struct {
	URL    string
	Client *http.Client
}

// NewHTTPGateway returns a GatewayClient for the gateway at base.
func NewHTTPGateway(base string) *HTTPGateway {
	return &HTTPGateway{URL: strings.TrimRight(base, "/"), Client: newHTTPClient()}
}

type gqlTags struct {
	Data struct {
		Transactions struct {
			Edges []struct {
				Node struct {
					Tags []Tag `json:"tags"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"transactions"`
	} `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

func (g *HTTPGateway) graphql(ctx context.Context, query string, vars map[string]any) ([]Tag, bool, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	u := g.URL + "/graphql"
	code, _, b, err := httpDo(ctx, g.Client, http.MethodPost, u, body, map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
	if err != nil {
		return nil, false, fmt.Errorf("mu: gateway GraphQL: %w", err)
	}
	if code/100 != 2 {
		return nil, false, &HTTPError{URL: u, Status: code, Body: trimBody(b)}
	}
	var r gqlTags
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, false, fmt.Errorf("mu: gateway GraphQL answer: %w", err)
	}
	if len(r.Errors) > 0 {
		return nil, false, fmt.Errorf("mu: gateway GraphQL: %s", r.Errors[0].Message)
	}
	if len(r.Data.Transactions.Edges) == 0 {
		return nil, false, nil
	}
	return r.Data.Transactions.Edges[0].Node.Tags, true, nil
}

// Tags looks a transaction up by id (gateway.md Q2, with every tag).
func (g *HTTPGateway) Tags(ctx context.Context, id string) ([]Tag, error) {
	tags, ok, err := g.graphql(ctx, `query GetTransactions($transactionIds: [ID!]!) {
  transactions(ids: $transactionIds) { edges { node { tags { name value } } } }
}`, map[string]any{"transactionIds": []string{id}})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("transaction %s: %w", id, ErrNotFound)
	}
	return tags, nil
}

// SchedulerLocation runs gateway.md Q3.
func (g *HTTPGateway) SchedulerLocation(ctx context.Context, address string) (string, time.Duration, error) {
	tags, ok, err := g.graphql(ctx, `query GetSchedulerLocation($owner: String!) {
  transactions(owners: [$owner], tags: [{ name: "Data-Protocol", values: ["ao"] }, { name: "Type", values: ["Scheduler-Location"] }], sort: HEIGHT_DESC, first: 1) {
    edges { node { tags { name value } } }
  }
}`, map[string]any{"owner": address})
	if err != nil {
		return "", 0, err
	}
	if !ok {
		return "", 0, fmt.Errorf("Scheduler-Location of %s: %w", address, ErrNotFound)
	}
	return locationFromTags(address, tags)
}

// locationFromTags reads Url and Time-To-Live, case-insensitively as
// ao-scheduler-utils does.
func locationFromTags(address string, tags []Tag) (string, time.Duration, error) {
	var u, ttl string
	for _, t := range tags {
		switch strings.ToLower(t.Name) {
		case "url":
			if u == "" {
				u = t.Value
			}
		case "time-to-live":
			if ttl == "" {
				ttl = t.Value
			}
		}
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(ttl), 10, 64)
	if u == "" || err != nil || ms < 0 {
		return "", 0, fmt.Errorf("mu: invalid Scheduler-Location of %s (Url %q, Time-To-Live %q)", address, u, ttl)
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return "", 0, fmt.Errorf("mu: invalid Scheduler-Location of %s: Url %q", address, u)
	}
	return strings.TrimRight(u, "/"), time.Duration(ms) * time.Millisecond, nil
}

// Upload posts the item to /tx/arweave.
func (g *HTTPGateway) Upload(ctx context.Context, item []byte) error {
	u := g.URL + "/tx/arweave"
	code, _, b, err := httpDo(ctx, g.Client, http.MethodPost, u, item, octet)
	if err != nil {
		return fmt.Errorf("mu: upload: %w", err)
	}
	if code/100 != 2 {
		return &HTTPError{URL: u, Status: code, Body: trimBody(b)}
	}
	return nil
}
