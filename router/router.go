// Package router is `aonode router`: one CU URL for clients and MUs in front
// of several Compute Units. It speaks the reference CU's routes and proxies
// each request to the CU package placement chooses for its process (the
// cheapest healthy CU, spread over equal ones, pins first), failing over to
// the next when that CU does not answer, answers 5xx, or refuses with 402.
//
// Because placement is a function of the process and the table, a router, an
// MU and an SDK configured with the same CUs agree on where each process
// runs, without talking to each other.
package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/httpx"
	"github.com/aonode/aonode/placement"
)

// Config configures a Router.
type Config struct {
	Placer *placement.Placer
	// DataDir holds pins.json, the pin table ({"process id": "CU URL"}),
	// read at start.
	DataDir string
	// Timeout bounds the wait for a CU's answer to start (default 2 min: a
	// result may need a long evaluation first).
	Timeout time.Duration
	// MaxBodyBytes bounds request bodies (dry-run, verify; default 10 MiB).
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Router proxies CU routes to placed CUs.
type Router struct {
	cfg    Config
	p      *placement.Placer
	client *http.Client
	lim    *httpx.Limiter
	log    *slog.Logger

	mu       sync.Mutex
	requests map[[2]string]int64
}

// New returns a Router and loads the pin table from cfg.DataDir.
func New(cfg Config) (*Router, error) {
	if cfg.Placer == nil {
		return nil, errors.New("router: no placement")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{cfg: cfg, p: cfg.Placer, log: cfg.Logger, requests: map[[2]string]int64{},
		lim: httpx.NewLimiter(8*cfg.MaxBodyBytes, 5*time.Second),
		client: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				ResponseHeaderTimeout: cfg.Timeout,
				MaxIdleConnsPerHost:   64,
				IdleConnTimeout:       90 * time.Second,
			}}}
	if cfg.DataDir != "" {
		if err := r.loadPins(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// PinsFile is the pin table's file name in the data directory.
const PinsFile = "pins.json"

func (r *Router) loadPins() error {
	path := filepath.Join(r.cfg.DataDir, PinsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("router: pins: %w", err)
	}
	var pins map[string]string
	if err := json.Unmarshal(b, &pins); err != nil {
		return fmt.Errorf("router: %s: want {\"process id\": \"CU URL\"}: %w", path, err)
	}
	for pid, u := range pins {
		if err := r.p.Pin(pid, u); err != nil {
			return fmt.Errorf("router: %s: %w", path, err)
		}
	}
	return nil
}

// Handler is the router's HTTP API.
func (r *Router) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		// The cheapest healthy CU's prices stand for the router's in the CU
		// info shape, so tools that read a CU's GET / (the AO-Core
		// adapter's simple_pay_price) see what a process placed here pays.
		tb := r.p.Table()
		out := map[string]any{"router": true, "timestamp": time.Now().UnixMilli(), "placement": tb}
		if len(tb.CUs) > 0 && tb.CUs[0].Healthy {
			pr := tb.CUs[0].Prices
			out["prices"] = pr
			out["pricing"] = pr.Message != "0" || pr.Gigafuel != "0" || pr.Verification != "0" || pr.DryRun != "0"
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
		n := r.p.Healthy()
		code := http.StatusOK
		if n == 0 {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ok": n > 0, "healthyCUs": n})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		r.writeMetrics(w)
	})
	byQuery := func(w http.ResponseWriter, req *http.Request) {
		pid := req.URL.Query().Get("process-id")
		if pid == "" {
			writeError(w, http.StatusBadRequest, "process-id query parameter is required")
			return
		}
		r.proxy(w, req, pid)
	}
	byPath := func(w http.ResponseWriter, req *http.Request) { r.proxy(w, req, req.PathValue("process")) }
	mux.HandleFunc("GET /result/{message}", byQuery)
	mux.HandleFunc("GET /attestation/{message}", byQuery)
	mux.HandleFunc("POST /dry-run", byQuery)
	mux.HandleFunc("GET /results/{process}", byPath)
	mux.HandleFunc("GET /state/{process}", byPath)
	mux.HandleFunc("GET /cron/{process}", byPath)
	mux.HandleFunc("GET /usage/{process}", byPath)
	mux.HandleFunc("POST /verify", func(w http.ResponseWriter, req *http.Request) {
		// A verification is placed by its process when the caller names it,
		// else by its body, so that a retry goes to the same verifier; and
		// never on the CU that made the attestation (see proxy).
		r.proxy(w, req, req.URL.Query().Get("process-id"))
	})
	return httpx.Wrap(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if req.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "*")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, pattern := mux.Handler(req)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(sw, req)
		if pattern == "" {
			pattern = "other"
		}
		r.mu.Lock()
		r.requests[[2]string{pattern, fmt.Sprint(sw.code)}]++
		r.mu.Unlock()
	}))
}

// hopHeaders are not forwarded either way (RFC 9110 §7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func copyHeaders(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
}

// CUHeader names the CU that answered, on every proxied answer.
const CUHeader = "X-Aonode-Cu"

// maxRefusalBytes bounds a 402 kept to be answered when every CU refuses.
const maxRefusalBytes = 64 << 10

// proxy sends req to pid's CU, failing over, and streams the answer back.
func (r *Router) proxy(w http.ResponseWriter, req *http.Request, pid string) {
	var body []byte
	if req.Method == http.MethodPost {
		b, release, err := httpx.ReadBody(w, req, r.lim, r.cfg.MaxBodyBytes)
		defer release()
		if err != nil {
			writeError(w, httpx.Status(err), err.Error())
			return
		}
		body = b
		if pid == "" {
			sum := sha256.Sum256(body)
			pid = "body:" + hex.EncodeToString(sum[:])
		}
	}
	// A CU does not verify its own attestation: the one that signed the
	// attestation a /verify carries is passed over.
	var attester string
	if req.URL.Path == "/verify" {
		attester = attesterOf(body)
	}
	addrs := map[string]string{}
	if attester != "" {
		for _, c := range r.p.Table().CUs {
			addrs[c.URL] = c.Address
		}
	}
	// A GET or a dry-run may be sent again to another CU after any failure;
	// a verification (it is charged) only when it never reached the CU.
	resend := req.Method == http.MethodGet || req.URL.Path == "/dry-run"
	path := req.URL.EscapedPath()
	if req.URL.RawQuery != "" {
		path += "?" + req.URL.RawQuery
	}
	var resp *http.Response
	var refusal *refused
	_, err := r.p.Do(req.Context(), pid, func(ctx context.Context, cu string) (placement.Outcome, error) {
		if attester != "" && addrs[cu] == attester {
			return placement.NotNow, fmt.Errorf("%s made the attestation and does not verify it", cu)
		}
		out, err := http.NewRequestWithContext(ctx, req.Method, cu+path, bytes.NewReader(body))
		if err != nil {
			return placement.Answered, err
		}
		copyHeaders(out.Header, req.Header)
		out.Header.Del("Host")
		if body == nil {
			out.Body, out.ContentLength = http.NoBody, 0
		}
		res, err := r.client.Do(out)
		if err != nil {
			if !resend && !isDialError(err) {
				return placement.Answered, fmt.Errorf("%s: %w", cu, err)
			}
			return placement.Unwell, fmt.Errorf("%s: %w", cu, err)
		}
		o := placement.Classify(res.StatusCode)
		if o == placement.Answered {
			res.Header.Set(CUHeader, cu)
			resp = res
			return o, nil
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, maxRefusalBytes))
		res.Body.Close()
		if o == placement.NotNow && refusal == nil { // the first refusal is the process's own CU: pay there
			refusal = &refused{cu: cu, status: res.StatusCode, header: res.Header, body: b}
		}
		return o, fmt.Errorf("%s: HTTP %d: %s", cu, res.StatusCode, strings.TrimSpace(string(b[:min(len(b), 300)])))
	})
	if resp == nil {
		if refusal != nil { // every CU that answered refused for money: say what the first costs
			copyHeaders(w.Header(), refusal.header)
			w.Header().Set(CUHeader, refusal.cu)
			w.Header().Del("Content-Length")
			w.WriteHeader(refusal.status)
			w.Write(refusal.body)
			return
		}
		msg := "no CU answered"
		if err != nil {
			msg += ": " + err.Error()
		}
		if req.Context().Err() != nil {
			return // the client left
		}
		writeError(w, http.StatusBadGateway, msg)
		return
	}
	defer resp.Body.Close()
	copyHeaders(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(flushWriter{w}, resp.Body); err != nil && req.Context().Err() == nil {
		r.log.Warn("router: copying a CU's answer failed", "cu", resp.Header.Get(CUHeader), "path", req.URL.Path, "err", err)
	}
}

type refused struct {
	cu     string
	status int
	header http.Header
	body   []byte
}

// isDialError reports an error that happened before the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// flushWriter flushes after each write so that a long answer streams.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int)        { w.code = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *Router) writeMetrics(w io.Writer) {
	r.mu.Lock()
	keys := make([][2]string, 0, len(r.requests))
	for k := range r.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	fmt.Fprintf(w, "# HELP router_http_requests_total HTTP requests, by route and status.\n# TYPE router_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(w, "router_http_requests_total{route=%q,code=%q} %d\n", k[0], k[1], r.requests[k])
	}
	r.mu.Unlock()
	r.p.WriteMetrics(w, "router_")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// attesterOf is the address of the CU that signed the attestation a /verify
// request item carries as its data ("" when it names one on the gateway
// instead, or the body is not such an item: the CU then answers for itself).
func attesterOf(body []byte) string {
	it, err := ans104.Parse(body)
	if err != nil || len(it.Data) == 0 {
		return ""
	}
	att, err := ans104.Parse(it.Data)
	if err != nil {
		return ""
	}
	return att.OwnerAddress()
}
