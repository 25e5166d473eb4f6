// Package client is the Go SDK for AO networks, aonode's counterpart of
// @permaweb/aoconnect: it signs messages and processes with any wallet type,
// sends them to a Messenger Unit, and reads results from a Compute Unit. Its
// requests and default tags are the ones aoconnect sends (legacy mode), so a
// node cannot tell the two apart.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/placement"
)

// Tag is a data item tag.
type Tag = ans104.Tag

// Default unit URLs: the local network `aonode run` starts.
const (
	DefaultGatewayURL = "http://localhost:4000"
	DefaultMUURL      = "http://localhost:4002"
	DefaultSUURL      = "http://localhost:4003"
	DefaultCUURL      = "http://localhost:4004"
)

// Client talks to one AO network.
type Client struct {
	MU, CU, SU, Gateway string // unit base URLs
	// CUs, when set, places each process on one of several CUs (package
	// placement: the cheapest healthy CU, spread over equal ones, sticky,
	// with failover), as the MU does, so both read a process's results from
	// the same CU; CU is then unused. UseCUs sets it.
	CUs    *placement.Placer
	Signer ans104.Signer
	HTTP   *http.Client
	// SDK is the value of the SDK tag on what the client signs.
	SDK string
}

// New returns a client that signs with s and finds the units as aoconnect does:
// from MU_URL, CU_URL, GATEWAY_URL (and SU_URL), else the local defaults.
// CU_URL may list several CUs, comma-separated (see UseCUs); a list that
// does not parse leaves CU as it is, and requests to it fail with the reason.
func New(s ans104.Signer) *Client {
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return strings.TrimRight(v, "/")
		}
		return def
	}
	c := &Client{
		MU: env("MU_URL", DefaultMUURL), CU: env("CU_URL", DefaultCUURL), SU: env("SU_URL", DefaultSUURL),
		Gateway: env("GATEWAY_URL", DefaultGatewayURL), Signer: s,
		HTTP: &http.Client{Timeout: 2 * time.Minute}, SDK: "aonode",
	}
	if strings.Contains(c.CU, ",") {
		if urls, err := placement.ParseURLs(c.CU); err == nil {
			c.UseCUs(urls, false)
		}
	}
	return c
}

// UseCUs makes the client choose each process's CU among urls and, with
// discover, the CUs whose Compute-Price records c.Gateway holds, the way the
// MU does (package placement). One URL and no discovery is simply c.CU.
func (c *Client) UseCUs(urls []string, discover bool) error {
	if len(urls) == 1 && !discover {
		c.CU, c.CUs = strings.TrimRight(urls[0], "/"), nil
		return nil
	}
	cfg := placement.Config{URLs: urls, HTTP: c.HTTP}
	if discover {
		cfg.GatewayURL = c.Gateway
	}
	p, err := placement.New(cfg)
	if err != nil {
		return fmt.Errorf("client: CUs: %w", err)
	}
	c.CUs = p
	if len(urls) > 0 {
		c.CU = urls[0]
	}
	return nil
}

// onCU runs req against process's CU: c.CU, or with c.CUs the placed CU,
// failing over to the next when one does not answer, answers 5xx or 402.
func (c *Client) onCU(ctx context.Context, process string, req func(base string) error) error {
	if c.CUs == nil {
		return req(c.CU)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c.CUs.Ready(rctx) // the first choice knows prices and health
	cancel()
	_, err := c.CUs.Do(ctx, process, func(ctx context.Context, base string) (placement.Outcome, error) {
		err := req(base)
		var e *Error
		var ue *url.Error
		switch {
		case err == nil:
			return placement.Answered, nil
		case errors.As(err, &e):
			return placement.Classify(e.Status), err
		case errors.As(err, &ue): // no answer
			return placement.Unwell, err
		}
		return placement.Answered, err
	})
	return err
}

// Error is a unit's non-2xx answer.
type Error struct {
	URL    string
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %d %s", e.URL, e.Status, e.Msg) }

// do sends a request and decodes a 2xx JSON answer into out (if non-nil).
func (c *Client) do(ctx context.Context, method, u, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", u, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(b))
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) == nil && (e.Error != "" || e.Message != "") {
			msg = e.Error + e.Message
		}
		return &Error{URL: u, Status: resp.StatusCode, Msg: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: answer is not the expected JSON: %w", u, err)
	}
	return nil
}

// protocolTags lays tags out as aoconnect does: the caller's tags, then
// Content-Type (only when there is no data), SDK, and the Data-Protocol block.
func (c *Client) protocolTags(user []Tag, noData bool, typ string, extra ...Tag) []Tag {
	variant := "ao.TN.1"
	for _, t := range user {
		if strings.EqualFold(t.Name, "Variant") {
			variant = t.Value
			break
		}
	}
	tags := append([]Tag(nil), user...)
	if noData {
		tags = append(tags, Tag{Name: "Content-Type", Value: "text/plain"})
	}
	tags = append(tags, Tag{Name: "SDK", Value: c.SDK},
		Tag{Name: "Data-Protocol", Value: "ao"}, Tag{Name: "Variant", Value: variant}, Tag{Name: "Type", Value: typ})
	return append(tags, extra...)
}

// Spawn is a new process.
type Spawn struct {
	Module    string // module id
	Scheduler string // SU wallet address
	Tags      []Tag  // e.g. Authority, Name, Cron-Interval, On-Boot
	Data      []byte
}

// Spawn signs a Process item and sends it to the MU, returning the process id.
func (c *Client) Spawn(ctx context.Context, s Spawn) (string, error) {
	if s.Module == "" || s.Scheduler == "" {
		return "", errors.New("client: spawn needs a module and a scheduler")
	}
	data := s.Data
	if len(data) == 0 {
		data = []byte(" ")
	}
	tags := c.protocolTags(s.Tags, len(s.Data) == 0, "Process",
		Tag{Name: "Module", Value: s.Module}, Tag{Name: "Scheduler", Value: s.Scheduler},
		Tag{Name: "Timestamp", Value: strconv.FormatInt(time.Now().UnixMilli(), 10)})
	d, err := ans104.Sign(c.Signer, data, ans104.Options{Tags: tags})
	if err != nil {
		return "", fmt.Errorf("client: spawn: %w", err)
	}
	return c.send(ctx, d)
}

// Message is a message to a process.
type Message struct {
	Process string
	Tags    []Tag
	Data    []byte
	// Anchor is nil or 32 bytes. When nil, Message sets a random one: with a
	// deterministic signature scheme (Ed25519, Ethereum) the same content would
	// otherwise give the same item id, and the SU would treat a second send as
	// a retry of the first.
	Anchor []byte
}

// Message signs a message and sends it to the MU, returning its id.
func (c *Client) Message(ctx context.Context, m Message) (string, error) {
	target, err := ans104.DecodeID(m.Process)
	if err != nil {
		return "", fmt.Errorf("client: process: %w", err)
	}
	data := m.Data
	if len(data) == 0 {
		data = []byte(" ")
	}
	anchor := m.Anchor
	if anchor == nil {
		anchor = randomAnchor()
	}
	d, err := ans104.Sign(c.Signer, data, ans104.Options{Target: target[:], Anchor: anchor, Tags: c.protocolTags(m.Tags, len(m.Data) == 0, "Message")})
	if err != nil {
		return "", fmt.Errorf("client: message: %w", err)
	}
	return c.send(ctx, d)
}

// randomAnchor is 32 ASCII characters (hex of 16 random bytes), so that units
// showing anchors as text (the SU does) show it.
func randomAnchor() []byte {
	var b [16]byte
	rand.Read(b[:])
	return []byte(hex.EncodeToString(b[:]))
}

// Send posts an already signed item to the MU and returns its id.
func (c *Client) Send(ctx context.Context, d *ans104.DataItem) (string, error) { return c.send(ctx, d) }

func (c *Client) send(ctx context.Context, d *ans104.DataItem) (string, error) {
	var out struct{ ID string }
	if err := c.do(ctx, http.MethodPost, c.MU+"/", "application/octet-stream", d.Bytes(), &out); err != nil {
		return "", fmt.Errorf("client: send %s: %w", d.ID(), err)
	}
	return d.ID(), nil
}

// OutMessage is a message in a result's outbox.
type OutMessage struct {
	Target string `json:"Target"`
	Anchor string `json:"Anchor,omitempty"`
	Data   any    `json:"Data,omitempty"`
	Tags   []Tag  `json:"Tags"`
}

// Result is what evaluating one message produced.
type Result struct {
	Output      json.RawMessage   `json:"Output"`
	Messages    []OutMessage      `json:"Messages"`
	Spawns      []OutMessage      `json:"Spawns"`
	Assignments []json.RawMessage `json:"Assignments"`
	Error       json.RawMessage   `json:"Error,omitempty"`
	GasUsed     int64             `json:"GasUsed,omitempty"`
}

// OutputData returns Output.data, or Output itself when it is a plain value,
// as text (aos answers Eval with {data, prompt, print}).
func (r *Result) OutputData() string {
	var obj struct {
		Data json.RawMessage `json:"data"`
	}
	raw := r.Output
	if json.Unmarshal(raw, &obj) == nil && obj.Data != nil {
		raw = obj.Data
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// Prompt returns Output.prompt, the aos prompt, or "".
func (r *Result) Prompt() string {
	var obj struct {
		Prompt string `json:"prompt"`
	}
	json.Unmarshal(r.Output, &obj)
	return obj.Prompt
}

// Failed reports whether the message failed (an Error in the result).
func (r *Result) Failed() bool {
	return len(r.Error) > 0 && string(r.Error) != "null" && string(r.Error) != `""`
}

// Result reads the result of a message from the CU (evaluating up to it).
func (c *Client) Result(ctx context.Context, process, message string) (*Result, error) {
	var r Result
	err := c.onCU(ctx, process, func(base string) error {
		r = Result{}
		return c.do(ctx, http.MethodGet, base+"/result/"+url.PathEscape(message)+"?process-id="+url.QueryEscape(process), "", nil, &r)
	})
	if err != nil {
		return nil, fmt.Errorf("client: result: %w", err)
	}
	return &r, nil
}

// ResultsQuery pages a process's results. Cursors come from a previous page.
type ResultsQuery struct {
	From, To string
	Sort     string // "ASC" or "DESC" (the CU's default is ASC)
	Limit    int
}

// ResultsPage is a page of results.
type ResultsPage struct {
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   Result `json:"node"`
	} `json:"edges"`
}

// Results pages a process's results.
func (c *Client) Results(ctx context.Context, process string, q ResultsQuery) (*ResultsPage, error) {
	v := url.Values{}
	if q.From != "" {
		v.Set("from", q.From)
	}
	if q.To != "" {
		v.Set("to", q.To)
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/results/" + url.PathEscape(process)
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var p ResultsPage
	err := c.onCU(ctx, process, func(base string) error {
		p = ResultsPage{}
		return c.do(ctx, http.MethodGet, base+path, "", nil, &p)
	})
	if err != nil {
		return nil, fmt.Errorf("client: results: %w", err)
	}
	return &p, nil
}

// DryRun evaluates a message against the process's current state without
// scheduling it. Owner defaults to the signer's address.
func (c *Client) DryRun(ctx context.Context, m Message) (*Result, error) {
	data := string(m.Data)
	if data == "" {
		data = "1234"
	}
	tags := append(append([]Tag(nil), m.Tags...), Tag{Name: "Data-Protocol", Value: "ao"}, Tag{Name: "Type", Value: "Message"}, Tag{Name: "Variant", Value: "ao.TN.1"})
	anchor := "0"
	if m.Anchor != nil {
		anchor = string(m.Anchor)
	}
	owner := "1234"
	if c.Signer != nil {
		owner = ans104.Address(c.Signer.Owner())
	}
	body, _ := json.Marshal(map[string]any{"Id": "1234", "Target": m.Process, "Owner": owner, "Anchor": anchor, "Data": data, "Tags": tags})
	var r Result
	err := c.onCU(ctx, m.Process, func(base string) error {
		r = Result{}
		return c.do(ctx, http.MethodPost, base+"/dry-run?process-id="+url.QueryEscape(m.Process), "application/json", body, &r)
	})
	if err != nil {
		return nil, fmt.Errorf("client: dry-run: %w", err)
	}
	return &r, nil
}

// monitorItem is the body of (un)monitor requests: a signed item targeting the process.
func (c *Client) monitorItem(process string) ([]byte, error) {
	target, err := ans104.DecodeID(process)
	if err != nil {
		return nil, fmt.Errorf("client: process: %w", err)
	}
	d, err := ans104.Sign(c.Signer, []byte(" "), ans104.Options{Target: target[:]})
	if err != nil {
		return nil, err
	}
	return d.Bytes(), nil
}

// Monitor asks the MU to drive a cron process.
func (c *Client) Monitor(ctx context.Context, process string) error {
	b, err := c.monitorItem(process)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodPost, c.MU+"/monitor/"+url.PathEscape(process), "application/octet-stream", b, nil); err != nil {
		return fmt.Errorf("client: monitor: %w", err)
	}
	return nil
}

// Unmonitor stops driving a cron process.
func (c *Client) Unmonitor(ctx context.Context, process string) error {
	b, err := c.monitorItem(process)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, c.MU+"/monitor/"+url.PathEscape(process), "application/octet-stream", b, nil); err != nil {
		return fmt.Errorf("client: unmonitor: %w", err)
	}
	return nil
}

// Assignment places an existing message (or Arweave transaction) into a process's schedule.
type Assignment struct {
	Process, Message string
	BaseLayer        bool
	Exclude          []string
}

// Assign asks the MU to assign, returning the assignment id.
func (c *Client) Assign(ctx context.Context, a Assignment) (string, error) {
	u := c.MU + "/?process-id=" + url.QueryEscape(a.Process) + "&assign=" + url.QueryEscape(a.Message)
	if a.BaseLayer {
		u += "&base-layer"
	}
	if len(a.Exclude) > 0 {
		u += "&exclude=" + url.QueryEscape(strings.Join(a.Exclude, ","))
	}
	var out struct{ ID string }
	if err := c.do(ctx, http.MethodPost, u, "application/octet-stream", nil, &out); err != nil {
		return "", fmt.Errorf("client: assign: %w", err)
	}
	return out.ID, nil
}

// Module describes a WASM module to publish.
type Module struct {
	Format       string // Module-Format, e.g. wasm32-unknown-emscripten4
	MemoryLimit  string // e.g. "1-gb"; empty for none
	ComputeLimit string // e.g. "9000000000000"; empty for none
	Tags         []Tag  // extra tags
}

// PublishModule uploads a WASM module as a Module item to the gateway (its
// bundler route) and returns the module id.
func (c *Client) PublishModule(ctx context.Context, wasm []byte, m Module) (string, error) {
	if m.Format == "" {
		return "", errors.New("client: module format is required")
	}
	tags := []Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Module"},
		{Name: "Module-Format", Value: m.Format}, {Name: "Input-Encoding", Value: "JSON-V1"}, {Name: "Output-Encoding", Value: "JSON-V1"}}
	if m.MemoryLimit != "" {
		tags = append(tags, Tag{Name: "Memory-Limit", Value: m.MemoryLimit})
	}
	if m.ComputeLimit != "" {
		tags = append(tags, Tag{Name: "Compute-Limit", Value: m.ComputeLimit})
	}
	tags = append(append(tags, Tag{Name: "Content-Type", Value: "application/wasm"}), m.Tags...)
	d, err := ans104.Sign(c.Signer, wasm, ans104.Options{Tags: tags})
	if err != nil {
		return "", fmt.Errorf("client: module: %w", err)
	}
	if err := c.do(ctx, http.MethodPost, c.Gateway+"/tx/arweave", "application/octet-stream", d.Bytes(), nil); err != nil {
		return "", fmt.Errorf("client: publish module: %w", err)
	}
	return d.ID(), nil
}

// SchedulerAddress asks an SU for its wallet address (GET / on the SU).
func (c *Client) SchedulerAddress(ctx context.Context) (string, error) {
	var out struct {
		Address string `json:"address"`
	}
	if err := c.do(ctx, http.MethodGet, c.SU+"/", "", nil, &out); err != nil {
		return "", fmt.Errorf("client: scheduler address: %w", err)
	}
	if out.Address == "" {
		return "", fmt.Errorf("client: %s did not say its address", c.SU)
	}
	return out.Address, nil
}

// ErrNotModule is returned by CheckModule for an id the gateway does not
// know as a Module item.
var ErrNotModule = errors.New("not a module")

// CheckModule asks the gateway (GraphQL, as the CU will when it loads the
// module) whether id is a published Module item, so that a spawn with a
// wrong id fails at once instead of at the process's first message.
func (c *Client) CheckModule(ctx context.Context, id string) error {
	if _, err := ans104.DecodeID(id); err != nil {
		return fmt.Errorf("client: module %q: %w", id, err)
	}
	body, _ := json.Marshal(map[string]any{
		"query":     `query ($id: ID!) { transaction(id: $id) { id tags { name value } } }`,
		"variables": map[string]string{"id": id},
	})
	var out struct {
		Data struct {
			Transaction *struct {
				Tags []Tag `json:"tags"`
			} `json:"transaction"`
		} `json:"data"`
	}
	if err := c.do(ctx, http.MethodPost, c.Gateway+"/graphql", "application/json", body, &out); err != nil {
		return fmt.Errorf("client: module %s: %w", id, err)
	}
	tx := out.Data.Transaction
	if tx == nil {
		return fmt.Errorf("client: module %s: %w: the gateway %s has no item with this id", id, ErrNotModule, c.Gateway)
	}
	for _, t := range tx.Tags {
		if t.Name == "Type" {
			if t.Value == "Module" {
				return nil
			}
			return fmt.Errorf("client: module %s: %w: it is a %s item", id, ErrNotModule, t.Value)
		}
	}
	return fmt.Errorf("client: module %s: %w: the item has no Type tag", id, ErrNotModule)
}

// DeliveryError is a step the MU gave up on while delivering what a message
// caused (a message to a process that does not exist, say).
type DeliveryError struct {
	Message string // the message whose consequences were delivered
	Step    string // the MU's name for the step, e.g. "message" or "spawn"
	Process string // the process the step was for
	Err     string // the MU's last error
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("client: delivering what %s caused: %s to %s failed: %s", e.Message, e.Step, e.Process, e.Err)
}

// WaitDelivered waits until the MU has finished every step it took for the
// message id it ingested: the result pulled, each outbox message, spawn and
// assignment pushed, and their results pulled and pushed in turn. After it,
// whatever id caused has been evaluated by its targets, so a following read
// sees the replies. It polls the MU's trace query (GET /?debug=1&message=),
// where aonode's MU lists each step with its status. A message whose outputs
// never stop (two processes pinging each other forever) never finishes:
// bound ctx.
func (c *Client) WaitDelivered(ctx context.Context, id string) error {
	delay := 50 * time.Millisecond
	for {
		done, err := c.delivered(ctx, id)
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: still delivering what %s caused: %w", id, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// delivered reads every page of the trace of id once.
func (c *Client) delivered(ctx context.Context, id string) (bool, error) {
	rows := 0
	for page := 1; ; page++ {
		var out struct {
			PageInfo struct {
				HasNextPage bool `json:"hasNextPage"`
			} `json:"pageInfo"`
			Edges []struct {
				Node struct {
					Kind      string `json:"kind"`
					ProcessID string `json:"processId"`
					Status    string `json:"status"`
					LastError string `json:"lastError"`
				} `json:"node"`
			} `json:"edges"`
		}
		u := c.MU + "/?debug=1&message=" + url.QueryEscape(id) + "&page-size=100&page=" + strconv.Itoa(page)
		if err := c.do(ctx, http.MethodGet, u, "", nil, &out); err != nil {
			return false, fmt.Errorf("client: trace of %s: %w", id, err)
		}
		for _, e := range out.Edges {
			rows++
			switch e.Node.Status {
			case "done":
			case "failed":
				return false, &DeliveryError{Message: id, Step: e.Node.Kind, Process: e.Node.ProcessID, Err: e.Node.LastError}
			default:
				return false, nil
			}
		}
		if !out.PageInfo.HasNextPage {
			break
		}
	}
	if rows == 0 {
		return false, fmt.Errorf("client: the MU at %s has no trace of message %s (it traces only what it ingested itself)", c.MU, id)
	}
	return true, nil
}
