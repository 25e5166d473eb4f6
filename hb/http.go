package hb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/aonode/aonode/internal/httpx"
)

// Handler is the AO-Core HTTP surface (mainnet-and-market.md §2.7): node info,
// /push, and per-process push, compute/results, slot/current, dry-run
// (as=execution/compute), schedule and now. It has the hardening every unit
// has (httpx.Wrap): bodies that trickle in are cut, and net/http's own error
// answers are JSON like the adapter's.
func (a *Adapter) Handler() http.Handler {
	return httpx.Wrap(http.HandlerFunc(a.serve))
}

// route is a request path in AO-Core's grammar: "/" separates parts, and a
// part's "&k=v" suffixes (and the query) are parameters.
type route struct {
	parts  []string          // keys, with "k=v" parts kept whole
	params map[string]string // every k=v, from parts, suffixes and the query
	extra  []Tag             // the suffix parameters in order, for dry-run tags
}

func parseRoute(r *http.Request) route {
	rt := route{params: map[string]string{}}
	for _, seg := range strings.Split(strings.Trim(r.URL.Path, "/"), "/") {
		subs := strings.Split(seg, "&")
		rt.parts = append(rt.parts, subs[0])
		if k, v, ok := strings.Cut(subs[0], "="); ok {
			rt.params[k] = v
		}
		for _, s := range subs[1:] {
			k, v, _ := strings.Cut(s, "=")
			if k == "" {
				continue
			}
			rt.params[k] = v
			rt.extra = append(rt.extra, Tag{Name: k, Value: v})
		}
	}
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			rt.params[k] = vs[0]
		}
	}
	return rt
}

func (a *Adapter) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "*")
	// Browsers hide response headers unless exposed: spawn reads "process".
	h.Set("Access-Control-Expose-Headers", "process, slot, id")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead {
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Msg: "method not allowed"})
		return
	}
	ctx := r.Context()
	rt := parseRoute(r)
	p := rt.parts
	switch {
	case p[0] == "~meta@1.0" && len(p) >= 2 && p[1] == "info":
		a.info(ctx, w, p[2:])
	case p[0] == "push" && len(p) == 1:
		body, ok := a.body(w, r)
		if !ok {
			return
		}
		pid, err := a.Spawn(ctx, body)
		if err != nil {
			writeError(w, err)
			return
		}
		h.Set("process", pid)
		h.Set("slot", "0")
		writeJSON(w, http.StatusOK, map[string]any{"process": pid, "slot": 0})
	case len(p) >= 2 && p[0] != "":
		a.processRoute(ctx, w, r, rt)
	default:
		writeError(w, &Error{Status: http.StatusNotFound, Msg: "no AO-Core route " + r.URL.Path +
			"; this node serves /~meta@1.0/info, /push and /{process}~process@1.0/{push,compute/results=N,slot/current,as=execution/compute,schedule,now}"})
	}
}

func (a *Adapter) info(ctx context.Context, w http.ResponseWriter, keys []string) {
	info, err := a.Info(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(keys) == 0 {
		writeJSON(w, http.StatusOK, info)
		return
	}
	v, ok := info[keys[0]]
	if !ok || len(keys) > 1 {
		writeError(w, &Error{Status: http.StatusNotFound, Msg: "node info has no key " + strings.Join(keys, "/")})
		return
	}
	writeText(w, v)
}

func (a *Adapter) processRoute(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route) {
	pid, dev, _ := strings.Cut(rt.parts[0], "~")
	if dev != "" && dev != "process@1.0" {
		writeError(w, &Error{Status: http.StatusNotFound, Msg: "device " + dev + " is not served; use /{process}~process@1.0/…"})
		return
	}
	if !validID(pid) {
		writeError(w, &Error{Status: http.StatusNotFound, Msg: "no AO-Core route " + r.URL.Path})
		return
	}
	rest := rt.parts[1:]
	post := r.Method == http.MethodPost
	switch {
	case rest[0] == "push" && len(rest) == 1:
		body, ok := a.itemBody(w, r, "push")
		if !ok {
			return
		}
		res, err := a.Push(ctx, pid, body)
		if err != nil {
			if res != nil {
				w.Header().Set("slot", strconv.FormatInt(res.Slot, 10))
				w.Header().Set("id", res.ID)
			}
			writeError(w, err)
			return
		}
		w.Header().Set("slot", strconv.FormatInt(res.Slot, 10))
		w.Header().Set("id", res.ID)
		if res.Attestation != "" {
			w.Header().Set("ao-attestation", res.Attestation)
		}
		writeJSON(w, http.StatusOK, res)
	case rest[0] == "slot" && (len(rest) == 1 || len(rest) == 2 && rest[1] == "current"):
		if post {
			// The body is an (unneeded) signed request; bound it all the same.
			if _, ok := a.body(w, r); !ok {
				return
			}
		}
		n, err := a.CurrentSlot(ctx, pid)
		if err != nil {
			writeError(w, err)
			return
		}
		writeText(w, n)
	case rest[0] == "as=execution" && len(rest) == 2 && rest[1] == "compute":
		body, ok := a.itemBody(w, r, "a dry-run")
		if !ok {
			return
		}
		raw, err := a.DryRun(ctx, pid, body, rt.extra)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"process": pid, "raw": raw})
	case rest[0] == "compute" || rest[0] == "results" || strings.HasPrefix(rest[0], "results="):
		ref, ok := resultRef(rt)
		if !ok {
			a.patchRoute(ctx, w, pid, rest[1:])
			return
		}
		if post {
			if _, ok := a.body(w, r); !ok {
				return
			}
		}
		res, err := a.Result(ctx, pid, ref)
		if err != nil {
			writeError(w, err)
			return
		}
		if res.Attestation != "" {
			w.Header().Set("ao-attestation", res.Attestation)
		}
		writeJSON(w, http.StatusOK, res)
	case rest[0] == "now":
		a.patchRoute(ctx, w, pid, rest[1:])
	case rest[0] == "schedule":
		var from, to *int64
		for k, dst := range map[string]**int64{"from": &from, "to": &to} {
			if v, ok := rt.params[k]; ok && v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					writeError(w, &Error{Status: http.StatusBadRequest, Msg: k + "=" + v + " is not a slot"})
					return
				}
				*dst = &n
			}
		}
		limit := 0
		if v := rt.params["limit"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				writeError(w, &Error{Status: http.StatusBadRequest, Msg: "limit=" + v + " is not a positive integer"})
				return
			}
			limit = n
		}
		page, err := a.Schedule(ctx, pid, from, to, limit)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(page)
	default:
		writeError(w, &Error{Status: http.StatusNotFound, Msg: "no AO-Core route " + r.URL.Path})
	}
}

// resultRef finds the slot or message id a compute request names:
// compute/results=N, compute&slot=N/results, results=N, or ?slot=N.
func resultRef(rt route) (string, bool) {
	for _, k := range []string{"results", "slot", "compute"} {
		if v := rt.params[k]; v != "" {
			return v, true
		}
	}
	return "", false
}

// itemBody reads the ANS-104 item the route what takes, refusing a request
// that is not a POST.
func (a *Adapter) itemBody(w http.ResponseWriter, r *http.Request, what string) ([]byte, bool) {
	if r.Method != http.MethodPost {
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Msg: what + " takes a POST with an ANS-104 item"})
		return nil, false
	}
	return a.body(w, r)
}

// body reads a request body bounded by MaxBodyBytes, with httpx.ReadBody as
// the units do: a declared length past the bound is refused unread.
func (a *Adapter) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, _, err := httpx.ReadBody(w, r, nil, a.cfg.MaxBodyBytes)
	if err != nil {
		code := httpx.Status(err)
		msg := "reading the body: " + err.Error()
		if code == http.StatusRequestEntityTooLarge {
			msg = "body larger than " + strconv.FormatInt(a.cfg.MaxBodyBytes, 10) + " bytes"
		}
		writeError(w, &Error{Status: code, Msg: msg})
		return nil, false
	}
	return b, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	switch v := v.(type) {
	case string:
		io.WriteString(w, v)
	case int64:
		io.WriteString(w, strconv.FormatInt(v, 10))
	default:
		b, _ := json.Marshal(v)
		w.Write(b)
	}
}

// writeError answers err as {"error": …}: an Error with its status, a
// cancelled request with 499-like 503, anything else 502 (a unit failed).
func writeError(w http.ResponseWriter, err error) {
	var e *Error
	switch {
	case errors.As(err, &e) && e.Status == http.StatusPaymentRequired:
		w.Header().Set("price", e.Price)
		w.Header().Set("balance", e.Balance)
		writeJSON(w, e.Status, map[string]string{"error": err.Error(), "price": e.Price, "balance": e.Balance})
	case errors.As(err, &e):
		writeJSON(w, e.Status, map[string]string{"error": err.Error()})
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
	}
}
