package hb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/mu"
	"github.com/aonode/aonode/su"
)

// Config names the units the adapter fronts.
type Config struct {
	GatewayURL, SUURL, CUURL, MUURL string
	// Address is the node address served at /~meta@1.0/info/address. Empty:
	// the MU's signing address, read from the MU (GET / header Ao-Mu-Address).
	// It must be the MU key: aos makes it the process Authority, and an aos
	// process trusts messages pushed by the MU only if the MU signed them.
	Address string
	// Operator is reported as the node operator (default: Address).
	Operator string
	// MaxBodyBytes bounds request bodies (default 10 MiB, as the SU and MU).
	MaxBodyBytes int64
	Client       *http.Client
	Logger       *slog.Logger
}

// Adapter serves AO-Core requests over the legacy units.
type Adapter struct {
	cfg  Config
	gw   *mu.HTTPGateway
	mu   sync.Mutex
	addr string
}

// New returns an adapter over the units in cfg; it does not contact them.
func New(cfg Config) (*Adapter, error) {
	for _, u := range []struct{ name, url string }{{"gateway", cfg.GatewayURL}, {"SU", cfg.SUURL}, {"CU", cfg.CUURL}, {"MU", cfg.MUURL}} {
		if u.url == "" {
			return nil, fmt.Errorf("hb: no %s URL", u.name)
		}
	}
	cfg.GatewayURL = strings.TrimRight(cfg.GatewayURL, "/")
	cfg.SUURL = strings.TrimRight(cfg.SUURL, "/")
	cfg.CUURL = strings.TrimRight(cfg.CUURL, "/")
	cfg.MUURL = strings.TrimRight(cfg.MUURL, "/")
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 3 * time.Minute}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Adapter{cfg: cfg, addr: cfg.Address,
		gw: &mu.HTTPGateway{URL: cfg.GatewayURL, Client: cfg.Client}}, nil
}

// Error is a failure the client caused or must be told about; Status is the
// HTTP status the skin answers with.
type Error struct {
	Status int
	Msg    string
	// Price and Balance are set on a 402 (HyperBEAM p4's refusal): what the
	// work costs and what the payer has, in the CU's token.
	Price, Balance string
}

func (e *Error) Error() string { return e.Msg }

func errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// maxUnitBody bounds what the adapter reads from a unit (a result with a
// large Output, a schedule page).
const maxUnitBody = 64 << 20

// call makes one request to a unit and returns its status and body.
func (a *Adapter) call(ctx context.Context, method, u string, body []byte, ctype string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("hb: %s %s: %w", method, u, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("hb: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxUnitBody+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("hb: reading %s %s: %w", method, u, err)
	}
	if len(b) > maxUnitBody {
		return 0, nil, nil, fmt.Errorf("hb: %s %s: answer larger than %d bytes", method, u, maxUnitBody)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// unitError turns a unit's non-2xx answer into an Error: the unit's 4xx
// reasons reach the client, anything else is a 502.
func unitError(unit string, status int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Error != "" || e.Message != "") {
		msg = e.Error
		if msg == "" {
			msg = e.Message
		}
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	if status == http.StatusPaymentRequired {
		var p struct{ Price, Balance string }
		json.Unmarshal(body, &p)
		return &Error{Status: status, Msg: msg, Price: p.Price, Balance: p.Balance}
	}
	if status >= 400 && status < 500 {
		return &Error{Status: status, Msg: msg}
	}
	return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("the %s answered %d: %s", unit, status, msg)}
}

// Address is the node's address: the key that signs pushed messages, which
// clients use as the process Authority and Scheduler.
func (a *Adapter) Address(ctx context.Context) (string, error) {
	a.mu.Lock()
	addr := a.addr
	a.mu.Unlock()
	if addr != "" {
		return addr, nil
	}
	code, hdr, body, err := a.call(ctx, http.MethodGet, a.cfg.MUURL+"/", nil, "")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", unitError("MU", code, body)
	}
	addr = hdr.Get("Ao-Mu-Address")
	if addr == "" {
		return "", fmt.Errorf("hb: the MU at %s does not name its address (no Ao-Mu-Address header)", a.cfg.MUURL)
	}
	a.mu.Lock()
	a.addr = addr
	a.mu.Unlock()
	return addr, nil
}

// Info is the node message of /~meta@1.0/info.
func (a *Adapter) Info(ctx context.Context) (map[string]any, error) {
	addr, err := a.Address(ctx)
	if err != nil {
		return nil, err
	}
	op := a.cfg.Operator
	if op == "" {
		op = addr
	}
	info := map[string]any{
		"address":  addr,
		"operator": op,
		// HyperBEAM's name for the price of a request: here the CU's price
		// of an evaluated message (0: free, the default).
		"simple_pay_price": int64(0),
		"node":             "aonode",
		"protocol":         "ao.N.1 over the legacy units (ao.TN.1)",
	}
	if p, err := a.cuPrices(ctx); err == nil && p != nil {
		n, _ := strconv.ParseInt(p.Message, 10, 64)
		info["simple_pay_price"] = n
		info["compute_prices"] = p
	}
	return info, nil
}

// cuPrices are the prices in the CU's GET / (nil for a CU that states none).
type cuPrices struct {
	Token        string `json:"token"`
	Message      string `json:"message"`
	Gigafuel     string `json:"gigafuel"`
	Verification string `json:"verification"`
	DryRun       string `json:"dryRun"`
}

func (a *Adapter) cuPrices(ctx context.Context) (*cuPrices, error) {
	code, _, b, err := a.call(ctx, http.MethodGet, a.cfg.CUURL+"/", nil, "")
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("CU info: %d %v", code, err)
	}
	var info struct {
		Prices *cuPrices `json:"prices"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, err
	}
	return info.Prices, nil
}

// checkItem verifies a pushed item as the MU's ingest does, with the
// status to answer.
func checkItem(body []byte) (*ans104.DataItem, string, error) {
	item, typ, err := mu.CheckItem(body)
	if err != nil {
		return nil, "", &Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	return item, typ, nil
}

// ingest hands a verified item to the MU, which schedules it on the SU and
// cranks what it causes.
func (a *Adapter) ingest(ctx context.Context, body []byte) error {
	code, _, rb, err := a.call(ctx, http.MethodPost, a.cfg.MUURL+"/", body, "application/octet-stream")
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return unitError("MU", code, rb)
	}
	return nil
}

// Spawn verifies a Process item, checks that its module exists, and
// schedules it (slot 0) through the MU. It returns the process id.
func (a *Adapter) Spawn(ctx context.Context, body []byte) (string, error) {
	item, typ, err := checkItem(body)
	if err != nil {
		return "", err
	}
	if typ != "Process" {
		return "", errorf(http.StatusBadRequest, "/push takes a Type: Process item; push messages to /%s~process@1.0/push",
			ans104.Base64URL(item.Target))
	}
	module, _ := item.Tag("Module")
	if err := a.checkModule(ctx, module); err != nil {
		return "", err
	}
	if err := a.ingest(ctx, body); err != nil {
		return "", fmt.Errorf("spawning %s: %w", item.ID(), err)
	}
	return item.ID(), nil
}

// checkModule refuses a process whose module the gateway cannot serve,
// before anything is scheduled. It asks the gateway as the MU does
// (mu.HTTPGateway.Tags), which also reports the gateway's GraphQL errors
// rather than taking them for an unknown module.
func (a *Adapter) checkModule(ctx context.Context, module string) error {
	if !validID(module) {
		return errorf(http.StatusBadRequest, "Module %q is not a transaction id", module)
	}
	tags, err := a.gw.Tags(ctx, module)
	if errors.Is(err, mu.ErrNotFound) {
		return errorf(http.StatusNotFound, "module %s is not on this node's gateway (aos's default module is a public Arweave id). "+
			"Fix: publish an aos module with `aonode module publish <aos.wasm>` and spawn with `aos <name> --module <printed id>`, "+
			"or run the gateway as 'aonode gateway --upstream https://arweave.net' so that it reads public modules through", module)
	}
	if err != nil {
		return fmt.Errorf("hb: looking up module %s on the gateway: %w", module, err)
	}
	for _, t := range tags {
		if t.Name == "Type" && t.Value != "Module" {
			return errorf(http.StatusBadRequest, "%s is not a Module (Type: %s)", module, t.Value)
		}
	}
	return nil
}

// Pushed is the answer to a message push: the slot, the ids and the legacy
// result (raw), as HyperBEAM's push answers with compute/results.
type Pushed struct {
	Slot    int64           `json:"slot"`
	Process string          `json:"process"`
	ID      string          `json:"id"`
	Raw     json.RawMessage `json:"raw"`
	// Attestation is the id of the CU's signed attestation of the result
	// (the CU's ao-attestation header; "" when it attests nothing).
	Attestation string `json:"-"`
}

// Push verifies a Message to pid, schedules it through the MU (which also
// cranks its outbox), and returns its slot and result. When the message was
// scheduled but its result cannot be read (a CU's 402, an outage), Push
// returns the slot and id with the error.
func (a *Adapter) Push(ctx context.Context, pid string, body []byte) (*Pushed, error) {
	if !validID(pid) {
		return nil, errorf(http.StatusBadRequest, "%q is not a process id", pid)
	}
	item, typ, err := checkItem(body)
	if err != nil {
		return nil, err
	}
	if typ != "Message" {
		return nil, errorf(http.StatusBadRequest, "/%s~process@1.0/push takes a Type: Message item; spawn processes with /push", pid)
	}
	if t := ans104.Base64URL(item.Target); t != pid {
		return nil, errorf(http.StatusBadRequest, "the message's target %s is not the process %s of the path", t, pid)
	}
	if err := a.checkProcess(ctx, pid); err != nil {
		return nil, err
	}
	if err := a.ingest(ctx, body); err != nil {
		return nil, fmt.Errorf("pushing %s: %w", item.ID(), err)
	}
	id := item.ID()
	slot, err := a.slotOf(ctx, pid, id, 10*time.Second)
	if err != nil {
		return nil, err
	}
	raw, att, err := a.result(ctx, pid, id)
	if err != nil {
		// Scheduled all the same: the caller learns where, so it does not
		// push the message again.
		return &Pushed{Slot: slot, Process: pid, ID: id}, err
	}
	return &Pushed{Slot: slot, Process: pid, ID: id, Raw: raw, Attestation: att}, nil
}

// checkProcess answers 404 unless the SU schedules pid. Callers only need
// to know that it does, so the SU's answer (the whole Process item) is not
// decoded.
func (a *Adapter) checkProcess(ctx context.Context, pid string) error {
	code, _, b, err := a.call(ctx, http.MethodGet, a.cfg.SUURL+"/processes/"+url.PathEscape(pid), nil, "")
	if err != nil {
		return err
	}
	if code == http.StatusNotFound || code == http.StatusBadRequest {
		return errorf(http.StatusNotFound, "process %s is not scheduled on this node", pid)
	}
	if code != http.StatusOK {
		return unitError("SU", code, b)
	}
	return nil
}

// slotOf reads the slot (the assignment's Nonce) of message id, waiting up
// to wait for the SU to hold it when the MU answered before the SU did. With
// a wait the message was accepted, so running out of it is a 504 that says
// so, not a 404 that would tell the client its message is unknown.
func (a *Adapter) slotOf(ctx context.Context, pid, id string, wait time.Duration) (int64, error) {
	if id == pid {
		return 0, nil
	}
	deadline := time.Now().Add(wait)
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		code, _, b, err := a.call(ctx, http.MethodGet, a.cfg.SUURL+"/"+url.PathEscape(id)+"?process-id="+url.QueryEscape(pid), nil, "")
		if err != nil {
			return 0, err
		}
		if code == http.StatusOK {
			var m su.MessageJSON
			if err := json.Unmarshal(b, &m); err != nil {
				return 0, fmt.Errorf("hb: the SU's message %s: %w", id, err)
			}
			return nonce(m)
		}
		if code/100 != 4 {
			return 0, unitError("SU", code, b)
		}
		if time.Now().After(deadline) {
			if wait > 0 {
				return 0, errorf(http.StatusGatewayTimeout, "the MU accepted message %s but the SU has not scheduled it on process %s after %s; "+
					"ask again at /%s~process@1.0/compute/results=%s", id, pid, wait, pid, id)
			}
			return 0, errorf(http.StatusNotFound, "message %s is not scheduled on process %s", id, pid)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(delay):
		}
	}
}

func nonce(m su.MessageJSON) (int64, error) {
	for _, t := range m.Assignment.Tags {
		if t.Name == "Nonce" {
			n, err := strconv.ParseInt(t.Value, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("hb: assignment %s has Nonce %q: %w", m.Assignment.ID, t.Value, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("hb: assignment %s has no Nonce", m.Assignment.ID)
}

// assigned is the id of what a slot schedules: the message, or for a pure
// assignment the assigned transaction.
func assigned(m su.MessageJSON) string {
	if m.Message != nil {
		return m.Message.ID
	}
	for _, t := range m.Assignment.Tags {
		if t.Name == "Message" {
			return t.Value
		}
	}
	return ""
}

// result reads the legacy CU result of message id (the process id: its boot).
func (a *Adapter) result(ctx context.Context, pid, id string) (json.RawMessage, string, error) {
	u := a.cfg.CUURL + "/result/" + url.PathEscape(id) + "?process-id=" + url.QueryEscape(pid) + "&no-busy=1"
	code, h, b, err := a.call(ctx, http.MethodGet, u, nil, "")
	if err != nil {
		return nil, "", err
	}
	if code != http.StatusOK {
		return nil, "", unitError("CU", code, b)
	}
	if !json.Valid(b) {
		return nil, "", errorf(http.StatusBadGateway, "the CU's result of %s is not JSON", id)
	}
	return b, h.Get("ao-attestation"), nil
}

// Result reads the result of a slot (decimal) or a message id of pid.
func (a *Adapter) Result(ctx context.Context, pid, ref string) (*Pushed, error) {
	if !validID(pid) {
		return nil, errorf(http.StatusBadRequest, "%q is not a process id", pid)
	}
	var slot int64
	id := ref
	if n, err := strconv.ParseInt(ref, 10, 64); err == nil {
		if n < 0 {
			return nil, errorf(http.StatusBadRequest, "slot %d is negative", n)
		}
		m, err := a.slotMessage(ctx, pid, n)
		if err != nil {
			return nil, err
		}
		slot, id = n, assigned(*m)
	} else if validID(ref) {
		if err := a.checkProcess(ctx, pid); err != nil {
			return nil, err
		}
		if slot, err = a.slotOf(ctx, pid, ref, 0); err != nil {
			return nil, err
		}
	} else {
		return nil, errorf(http.StatusBadRequest, "results=%q is neither a slot nor a message id", ref)
	}
	raw, att, err := a.result(ctx, pid, id)
	if err != nil {
		return nil, err
	}
	return &Pushed{Slot: slot, Process: pid, ID: id, Raw: raw, Attestation: att}, nil
}

// slotMessage reads slot n of pid's schedule.
func (a *Adapter) slotMessage(ctx context.Context, pid string, n int64) (*su.MessageJSON, error) {
	q := url.Values{"process-id": {pid}, "from-nonce": {strconv.FormatInt(n-1, 10)}, "to-nonce": {strconv.FormatInt(n, 10)}, "limit": {"1"}}
	page, err := a.page(ctx, pid, q)
	if err != nil {
		return nil, err
	}
	for _, e := range page.Edges {
		if s, err := nonce(e.Node); err == nil && s == n {
			return &e.Node, nil
		}
	}
	return nil, errorf(http.StatusNotFound, "process %s has no slot %d", pid, n)
}

func (a *Adapter) page(ctx context.Context, pid string, q url.Values) (*su.PageJSON, error) {
	code, _, b, err := a.schedule(ctx, pid, q)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, unitError("SU", code, b)
	}
	var p su.PageJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("hb: the SU's schedule of %s: %w", pid, err)
	}
	return &p, nil
}

func (a *Adapter) schedule(ctx context.Context, pid string, q url.Values) (int, http.Header, []byte, error) {
	if err := a.checkProcess(ctx, pid); err != nil {
		return 0, nil, nil, err
	}
	q.Set("process-id", pid)
	return a.call(ctx, http.MethodGet, a.cfg.SUURL+"/"+url.PathEscape(pid)+"?"+q.Encode(), nil, "")
}

// Schedule returns a page of pid's schedule in the legacy SU's JSON shape;
// from and to are slots (from inclusive, to inclusive, as HyperBEAM's), and
// limit bounds the page (0: the SU's default).
func (a *Adapter) Schedule(ctx context.Context, pid string, from, to *int64, limit int) (json.RawMessage, error) {
	if !validID(pid) {
		return nil, errorf(http.StatusBadRequest, "%q is not a process id", pid)
	}
	q := url.Values{}
	f := int64(-1)
	if from != nil {
		f = *from - 1
	}
	q.Set("from-nonce", strconv.FormatInt(f, 10))
	if to != nil {
		q.Set("to-nonce", strconv.FormatInt(*to, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	code, _, b, err := a.schedule(ctx, pid, q)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, unitError("SU", code, b)
	}
	return b, nil
}

// CurrentSlot is the latest slot of pid's schedule.
func (a *Adapter) CurrentSlot(ctx context.Context, pid string) (int64, error) {
	if !validID(pid) {
		return 0, errorf(http.StatusBadRequest, "%q is not a process id", pid)
	}
	if err := a.checkProcess(ctx, pid); err != nil {
		return 0, err
	}
	code, _, b, err := a.call(ctx, http.MethodGet, a.cfg.SUURL+"/"+url.PathEscape(pid)+"/latest", nil, "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		// The SU has the process but no message after it.
		if code == http.StatusBadRequest || code == http.StatusNotFound {
			return 0, nil
		}
		return 0, unitError("SU", code, b)
	}
	var m su.MessageJSON
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("hb: the SU's latest message of %s: %w", pid, err)
	}
	return nonce(m)
}

// Tag is one message tag.
type Tag = su.TagJSON

// transportTags are the AO-Core request settings aoconnect signs into every
// item; a dry-run does not show them to the process.
var transportTags = map[string]bool{"accept-bundle": true, "accept-codec": true, "require-codec": true, "signing-format": true}

// DryRun evaluates the body item, with extra tags (the path's Tag=Value
// parameters) appended, on pid's latest state without saving it, and
// returns the legacy result.
func (a *Adapter) DryRun(ctx context.Context, pid string, body []byte, extra []Tag) (json.RawMessage, error) {
	if !validID(pid) {
		return nil, errorf(http.StatusBadRequest, "%q is not a process id", pid)
	}
	msg := map[string]any{"Id": "dryrun", "Target": pid, "Owner": "", "Anchor": "0", "Data": "", "Tags": []Tag{}}
	var tags []Tag
	if len(body) > 0 {
		item, err := ans104.Parse(body)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "Invalid data item: %v", err)
		}
		if err := item.Verify(); err != nil {
			return nil, errorf(http.StatusBadRequest, "Data item %s does not verify: invalid signature", item.ID())
		}
		msg["Id"], msg["Owner"], msg["Data"] = item.ID(), item.OwnerAddress(), string(item.Data)
		if len(item.Anchor) > 0 {
			msg["Anchor"] = string(item.Anchor)
		}
		for _, t := range item.Tags {
			if !transportTags[strings.ToLower(t.Name)] {
				tags = append(tags, Tag{Name: t.Name, Value: t.Value})
			}
		}
	}
	msg["Tags"] = append(tags, extra...)
	if err := a.checkProcess(ctx, pid); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(msg)
	code, _, rb, err := a.call(ctx, http.MethodPost, a.cfg.CUURL+"/dry-run?process-id="+url.QueryEscape(pid), b, "application/json")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, unitError("CU", code, rb)
	}
	return rb, nil
}

// validID reports whether s is a 43-character base64url transaction id.
func validID(s string) bool {
	if len(s) != 43 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
