package cu

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
	"sync"
	"time"

	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/su"
)

// ErrNotFound is returned (wrapped) by Scheduler and Gateway implementations
// when the SU or gateway does not know an id.
var ErrNotFound = errors.New("cu: not found")

// UpstreamError is a failure of a unit the CU depends on (its SU or the
// gateway): the CU answers 502, so that a client or router does not take the
// CU itself for unwell.
type UpstreamError struct{ Err error }

func (e *UpstreamError) Error() string { return e.Err.Error() }
func (e *UpstreamError) Unwrap() error { return e.Err }

func upstreamf(format string, args ...any) error {
	return &UpstreamError{fmt.Errorf(format, args...)}
}

// Scheduler is how the CU reads a process's schedule (units.md §5.3, §5.5).
// The HTTP implementation talks to the process's SU; `aonode run` can plug in
// the in-process SU. Shapes are the SU's wire JSON, so both behave alike.
type Scheduler interface {
	// Process returns GET /processes/{pid}.
	Process(ctx context.Context, pid string) (*su.ProcessJSON, error)
	// Messages returns one page of GET /{pid} in timestamp mode: from
	// exclusive, to inclusive ("" for none).
	Messages(ctx context.Context, pid, from, to string, limit int) (*su.PageJSON, error)
	// Message returns GET /{id}?process-id={pid}: a scheduled message or
	// assignment.
	Message(ctx context.Context, pid, id string) (*su.MessageJSON, error)
	// Now returns GET /timestamp: the SU clock (ms) and block height, the
	// right boundary of cron generation.
	Now(ctx context.Context, pid string) (timestamp, height int64, err error)
}

// Tx is the metadata of a transaction or data item (gateway.md Q5).
type Tx struct {
	ID        string
	Owner     string // address
	OwnerKey  string // base64url key
	Tags      []su.TagJSON
	Signature string
	Anchor    string
	Recipient string
}

// BlockMeta is a block as cron generation needs it (gateway.md Q8).
type BlockMeta struct {
	Height    int64
	Timestamp int64 // ms
}

// Gateway is the permanent store as the CU uses it: module and transaction
// metadata, raw data, block metadata for block-based crons, Scheduler-Location
// lookups and checkpoint uploads.
type Gateway interface {
	Tx(ctx context.Context, id string) (*Tx, error)
	Raw(ctx context.Context, id string) ([]byte, error)
	// Blocks returns up to limit blocks with height >= min, ascending.
	Blocks(ctx context.Context, min int64, limit int) ([]BlockMeta, error)
	// SchedulerLocation resolves an SU wallet address to its newest
	// Scheduler-Location record (URL and Time-To-Live).
	SchedulerLocation(ctx context.Context, owner string) (string, time.Duration, error)
	// Upload stores a signed data item (a Checkpoint).
	Upload(ctx context.Context, item []byte) error
	// Drive is the WeaveDrive backend over this gateway, without
	// admissibility checks (the CU adds them per process, drive.go).
	Drive() wasm.Arweave
}

// ---- HTTP gateway ----

// HTTPGateway implements Gateway over an Arweave-compatible gateway
// (GraphQL at /graphql, data at /raw/{id}, uploads at /tx/arweave).
type HTTPGateway struct {
	URL    string
	Client *http.Client
}

// NewHTTPGateway returns a Gateway for base (no trailing slash needed).
func NewHTTPGateway(base string) *HTTPGateway {
	return &HTTPGateway{URL: strings.TrimRight(base, "/"), Client: &http.Client{Timeout: 2 * time.Minute}}
}

func httpGet(ctx context.Context, c *http.Client, u string) ([]byte, int, error) {
	return httpGetLimit(ctx, c, u, -1)
}

func httpGetLimit(ctx context.Context, c *http.Client, u string, max int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if max >= 0 {
		r = io.LimitReader(resp.Body, max+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("read %s: %w", u, err)
	}
	if max >= 0 && int64(len(b)) > max {
		return nil, resp.StatusCode, fmt.Errorf("read %s: %w (%d bytes)", u, errTooLarge, max)
	}
	return b, resp.StatusCode, nil
}

func (g *HTTPGateway) graphql(ctx context.Context, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.Client.Do(req)
	if err != nil {
		return upstreamf("cu: gateway graphql: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return upstreamf("cu: gateway graphql: status %d: %.200s", resp.StatusCode, b)
	}
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return upstreamf("cu: gateway graphql: %w", err)
	}
	if len(env.Errors) > 0 {
		return upstreamf("cu: gateway graphql: %s", env.Errors[0].Message)
	}
	return json.Unmarshal(env.Data, out)
}

type gqlNode struct {
	ID        string `json:"id"`
	Signature string `json:"signature"`
	Anchor    string `json:"anchor"`
	Recipient string `json:"recipient"`
	Owner     struct {
		Address string `json:"address"`
		Key     string `json:"key"`
	} `json:"owner"`
	Tags []su.TagJSON `json:"tags"`
}

type gqlTxs struct {
	Transactions struct {
		Edges []struct {
			Node gqlNode `json:"node"`
		} `json:"edges"`
	} `json:"transactions"`
}

// Tx runs the reference CU's metadata query (gateway.md Q5).
func (g *HTTPGateway) Tx(ctx context.Context, id string) (*Tx, error) {
	const q = `query GetProcesses($processIds: [ID!]!) { transactions(ids: $processIds) { edges { node { id signature anchor owner { address key } tags { name value } recipient } } } }`
	var out gqlTxs
	if err := g.graphql(ctx, q, map[string]any{"processIds": []string{id}}, &out); err != nil {
		return nil, err
	}
	if len(out.Transactions.Edges) == 0 {
		return nil, fmt.Errorf("%w: Transaction '%s' not found on gateway", ErrNotFound, id)
	}
	n := out.Transactions.Edges[0].Node
	return &Tx{ID: n.ID, Owner: n.Owner.Address, OwnerKey: n.Owner.Key, Tags: n.Tags, Signature: n.Signature, Anchor: n.Anchor, Recipient: n.Recipient}, nil
}

// Raw returns GET /raw/{id}.
func (g *HTTPGateway) Raw(ctx context.Context, id string) ([]byte, error) {
	return g.RawLimit(ctx, id, -1)
}

// errTooLarge is RawLimit's refusal of data over its limit.
var errTooLarge = errors.New("larger than allowed")

// RawLimit is Raw for data of at most max bytes (negative: no limit); more
// is an error wrapping errTooLarge, read no further than max+1 bytes.
func (g *HTTPGateway) RawLimit(ctx context.Context, id string, max int64) ([]byte, error) {
	b, code, err := httpGetLimit(ctx, g.Client, g.URL+"/raw/"+url.PathEscape(id), max)
	if err != nil {
		return nil, upstreamf("cu: gateway raw %s: %w", id, err)
	}
	if code == http.StatusNotFound {
		return nil, fmt.Errorf("%w: raw %s", ErrNotFound, id)
	}
	if code/100 != 2 {
		return nil, upstreamf("cu: gateway raw %s: status %d", id, code)
	}
	return b, nil
}

// Blocks runs gateway.md Q8.
func (g *HTTPGateway) Blocks(ctx context.Context, min int64, limit int) ([]BlockMeta, error) {
	const q = `query GetBlocks($min: Int!, $limit: Int!) { blocks(height: { min: $min }, first: $limit, sort: HEIGHT_ASC) { pageInfo { hasNextPage } edges { node { timestamp height } } } }`
	var out struct {
		Blocks struct {
			Edges []struct {
				Node struct {
					Timestamp int64 `json:"timestamp"`
					Height    int64 `json:"height"`
				} `json:"node"`
			} `json:"edges"`
		} `json:"blocks"`
	}
	if err := g.graphql(ctx, q, map[string]any{"min": min, "limit": limit}, &out); err != nil {
		return nil, err
	}
	bs := make([]BlockMeta, 0, len(out.Blocks.Edges))
	for _, e := range out.Blocks.Edges {
		bs = append(bs, BlockMeta{Height: e.Node.Height, Timestamp: e.Node.Timestamp * 1000})
	}
	return bs, nil
}

// SchedulerLocation runs gateway.md Q3.
func (g *HTTPGateway) SchedulerLocation(ctx context.Context, owner string) (string, time.Duration, error) {
	const q = `query GetSchedulerLocation($owner: String!) { transactions(owners: [$owner], tags: [{ name: "Data-Protocol", values: ["ao"] }, { name: "Type", values: ["Scheduler-Location"] }], sort: HEIGHT_DESC, first: 1) { edges { node { tags { name value } } } } }`
	var out gqlTxs
	if err := g.graphql(ctx, q, map[string]any{"owner": owner}, &out); err != nil {
		return "", 0, err
	}
	if len(out.Transactions.Edges) == 0 {
		return "", 0, fmt.Errorf("%w: no Scheduler-Location for %s", ErrNotFound, owner)
	}
	tags := out.Transactions.Edges[0].Node.Tags
	u, ttl := tagFold(tags, "Url"), tagFold(tags, "Time-To-Live")
	ms, err := strconv.ParseInt(ttl, 10, 64)
	if u == "" || err != nil {
		return "", 0, fmt.Errorf("cu: invalid Scheduler-Location of %s", owner)
	}
	return strings.TrimRight(u, "/"), time.Duration(ms) * time.Millisecond, nil
}

// Upload posts a data item to /tx/arweave.
func (g *HTTPGateway) Upload(ctx context.Context, item []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/tx/arweave", bytes.NewReader(item))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := g.Client.Do(req)
	if err != nil {
		return upstreamf("cu: upload: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return upstreamf("cu: upload: status %d: %.200s", resp.StatusCode, b)
	}
	return nil
}

// Drive returns the WeaveDrive backend.
func (g *HTTPGateway) Drive() wasm.Arweave { return httpDrive{g} }

// httpDrive serves WeaveDrive from the gateway without any admissibility
// check; the CU wraps it per process in a checkedDrive (drive.go).
type httpDrive struct{ g *HTTPGateway }

func (d httpDrive) Data(ctx context.Context, id string, _ int64) (wasm.Blob, error) {
	b, err := d.g.Raw(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, wasm.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

func (d httpDrive) Tx(ctx context.Context, id string) ([]byte, error) {
	b, code, err := httpGet(ctx, d.g.Client, d.g.URL+"/tx/"+url.PathEscape(id))
	if err != nil {
		return nil, err
	}
	if code == http.StatusNotFound {
		return nil, wasm.ErrNotFound
	}
	if code/100 != 2 {
		return nil, upstreamf("cu: gateway tx %s: status %d", id, code)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, upstreamf("cu: gateway tx %s: %w", id, err)
	}
	if _, ok := m["ownerAddress"]; !ok {
		if t, err := d.g.Tx(ctx, id); err == nil {
			m["ownerAddress"] = t.Owner
		}
	}
	return json.Marshal(m)
}

func (d httpDrive) Block(ctx context.Context, height int64) ([]byte, error) {
	b, code, err := httpGet(ctx, d.g.Client, d.g.URL+"/block/height/"+strconv.FormatInt(height, 10))
	if err != nil {
		return nil, err
	}
	if code == http.StatusNotFound {
		return nil, wasm.ErrNotFound
	}
	if code/100 != 2 {
		return nil, upstreamf("cu: gateway block %d: status %d", height, code)
	}
	return b, nil
}

func tagFold(tags []su.TagJSON, name string) string {
	for _, t := range tags {
		if strings.EqualFold(t.Name, name) {
			return t.Value
		}
	}
	return ""
}

func tagValue(tags []su.TagJSON, name string) (string, bool) {
	for _, t := range tags {
		if t.Name == name {
			return t.Value, true
		}
	}
	return "", false
}

// ---- HTTP scheduler ----

// HTTPScheduler implements Scheduler over SU HTTP APIs. Each process's SU is
// located from its Scheduler tag through the gateway's newest
// Scheduler-Location record (units.md §8), cached for the record's TTL;
// Fixed, when set, is used for every process instead.
type HTTPScheduler struct {
	Fixed   string
	Gateway Gateway
	Client  *http.Client
	// Known are SU URLs asked directly for a process the gateway does not
	// know yet (the node's own SU, say), so that a process spawned a moment
	// ago is found before its SU has published it.
	Known []string

	mu    sync.Mutex
	cache map[string]location // by process id
}

type location struct {
	url     string
	expires time.Time
}

// NewHTTPScheduler returns a Scheduler; fixed may be "".
func NewHTTPScheduler(fixed string, gw Gateway) *HTTPScheduler {
	return &HTTPScheduler{Fixed: strings.TrimRight(fixed, "/"), Gateway: gw, Client: &http.Client{Timeout: 2 * time.Minute}, cache: map[string]location{}}
}

// locate finds the SU URL of pid: the process's Scheduler tag (from the
// gateway, Q2-like) then its owner's Scheduler-Location (Q3).
func (s *HTTPScheduler) locate(ctx context.Context, pid string) (string, error) {
	if s.Fixed != "" {
		return s.Fixed, nil
	}
	s.mu.Lock()
	l, ok := s.cache[pid]
	s.mu.Unlock()
	if ok && time.Now().Before(l.expires) {
		return l.url, nil
	}
	if s.Gateway == nil {
		return "", errors.New("cu: no SU URL and no gateway to locate one")
	}
	tx, err := s.Gateway.Tx(ctx, pid)
	// A process spawned a moment ago may not be on the gateway yet: its SU
	// publishes asynchronously. Ask the SUs this CU knows (an SU holds a
	// process from its spawn on), then the gateway again for a little while,
	// before calling it unknown.
	if errors.Is(err, ErrNotFound) {
		for _, u := range s.Known {
			if s.has(ctx, u, pid) {
				s.mu.Lock()
				s.cache[pid] = location{url: u, expires: time.Now().Add(10 * time.Second)}
				s.mu.Unlock()
				return u, nil
			}
		}
	}
	for wait := 50 * time.Millisecond; errors.Is(err, ErrNotFound) && wait <= 800*time.Millisecond; wait *= 2 {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		tx, err = s.Gateway.Tx(ctx, pid)
	}
	if err != nil {
		return "", fmt.Errorf("cu: locate SU of %s: %w", pid, err)
	}
	sched := tagFold(tx.Tags, "Scheduler")
	if sched == "" {
		return "", fmt.Errorf("%w: process %s has no Scheduler tag", ErrNotFound, pid)
	}
	u, ttl, err := s.Gateway.SchedulerLocation(ctx, sched)
	if err != nil {
		return "", fmt.Errorf("cu: locate SU of %s: %w", pid, err)
	}
	s.mu.Lock()
	s.cache[pid] = location{url: u, expires: time.Now().Add(ttl)}
	s.mu.Unlock()
	return u, nil
}

// has reports whether the SU at base schedules pid.
func (s *HTTPScheduler) has(ctx context.Context, base, pid string) bool {
	_, code, err := httpGet(ctx, s.Client, base+"/processes/"+url.PathEscape(pid))
	return err == nil && code == http.StatusOK
}

func (s *HTTPScheduler) get(ctx context.Context, pid, path string, q url.Values, out any) error {
	base, err := s.locate(ctx, pid)
	if err != nil {
		return err
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var (
		b    []byte
		code int
	)
	for attempt := 0; ; attempt++ {
		b, code, err = httpGet(ctx, s.Client, u)
		if err == nil && code < 500 || attempt == 4 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil {
		return upstreamf("cu: SU %s: %w", u, err)
	}
	if code == http.StatusNotFound || code == http.StatusBadRequest {
		return fmt.Errorf("%w: SU %s: status %d: %.200s", ErrNotFound, path, code, b)
	}
	if code/100 != 2 {
		return upstreamf("cu: SU %s: status %d: %.200s", u, code, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return upstreamf("cu: SU %s: %w", u, err)
	}
	return nil
}

// Process implements Scheduler.
func (s *HTTPScheduler) Process(ctx context.Context, pid string) (*su.ProcessJSON, error) {
	var p su.ProcessJSON
	if err := s.get(ctx, pid, "/processes/"+url.PathEscape(pid), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Messages implements Scheduler.
func (s *HTTPScheduler) Messages(ctx context.Context, pid, from, to string, limit int) (*su.PageJSON, error) {
	q := url.Values{"process-id": {pid}, "limit": {strconv.Itoa(limit)}}
	if from != "" {
		q.Set("from", from)
	}
	if to != "" {
		q.Set("to", to)
	}
	var p su.PageJSON
	if err := s.get(ctx, pid, "/"+url.PathEscape(pid), q, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Message implements Scheduler.
func (s *HTTPScheduler) Message(ctx context.Context, pid, id string) (*su.MessageJSON, error) {
	var m su.MessageJSON
	if err := s.get(ctx, pid, "/"+url.PathEscape(id), url.Values{"process-id": {pid}}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Now implements Scheduler.
func (s *HTTPScheduler) Now(ctx context.Context, pid string) (int64, int64, error) {
	var t struct {
		Timestamp   json.RawMessage `json:"timestamp"`
		BlockHeight json.RawMessage `json:"block_height"`
	}
	if err := s.get(ctx, pid, "/timestamp", url.Values{"process-id": {pid}}, &t); err != nil {
		return 0, 0, err
	}
	ts, err1 := parseLooseInt(t.Timestamp)
	h, err2 := parseLooseInt(t.BlockHeight)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, upstreamf("cu: SU /timestamp: %w", err)
	}
	return ts, h, nil
}

// parseLooseInt reads a JSON number or a string holding an integer (the SU
// writes both, units.md §2 traps 2 and 3).
func parseLooseInt(raw json.RawMessage) (int64, error) {
	s := strings.Trim(string(raw), `"`)
	return strconv.ParseInt(s, 10, 64)
}
