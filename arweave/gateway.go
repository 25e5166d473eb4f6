package arweave

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	graphql "github.com/graph-gophers/graphql-go"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/httpx"
)

// uploadWait is how long an upload waits for its share of memory before 503.
const uploadWait = time.Minute

// Config configures a Gateway.
type Config struct {
	// MaxItemSize bounds uploaded items and bundles (default 128 MiB; modules are large).
	MaxItemSize int64
	// Upstream, when set, is a gateway to read through to for ids and queries
	// that are not local; data read from it is cached.
	Upstream string
	// Bundler, when set, receives every new upload, from a durable queue.
	Bundler string
	// Network is the name /info reports.
	Network string
	Logger  *slog.Logger
}

// Gateway serves the Arweave gateway and bundler HTTP API over a Store.
type Gateway struct {
	store    *Store
	gql      *graphQL
	cfg      Config
	upstream *remote
	bundler  *remote
	log      *slog.Logger
	uploads  *httpx.Limiter // bytes of large uploads held at once
	reads    *httpx.Limiter // bytes of large data held at once while served
	queries  *httpx.Limiter // GraphQL executions at once, one unit each
}

// NewGateway returns a gateway over s. Call Run to start background work
// (forwarding to the bundler).
func NewGateway(s *Store, cfg Config) *Gateway {
	if cfg.MaxItemSize <= 0 {
		cfg.MaxItemSize = 128 << 20
	}
	if cfg.Network == "" {
		cfg.Network = "aonode.local"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{store: s, gql: newGraphQL(s), cfg: cfg, log: cfg.Logger,
		uploads: httpx.NewLimiter(2*cfg.MaxItemSize, uploadWait),
		reads:   httpx.NewLimiter(2*cfg.MaxItemSize, uploadWait),
		queries: httpx.NewLimiter(int64(maxConcurrentQueries), queryWait)}
	if cfg.Upstream != "" {
		g.upstream = newRemote(cfg.Upstream)
	}
	if cfg.Bundler != "" {
		g.bundler = newRemote(cfg.Bundler)
	}
	return g
}

// Run does the gateway's background work until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	if g.bundler != nil {
		g.store.forwardLoop(ctx, g.bundler, g.log)
	}
}

// Handler returns the HTTP API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", g.info)
	mux.HandleFunc("GET /info", g.info)
	mux.HandleFunc("GET /tx_anchor", g.txAnchor)
	mux.HandleFunc("GET /price/{bytes}", g.price)
	mux.HandleFunc("GET /price/{bytes}/{target}", g.price)
	mux.HandleFunc("GET /tx/{id}", g.tx)
	mux.HandleFunc("GET /tx/{id}/status", g.txStatus)
	mux.HandleFunc("POST /tx", g.upload)
	mux.HandleFunc("POST /tx/{currency}", g.upload)
	mux.HandleFunc("POST /graphql", g.graphql)
	mux.HandleFunc("GET /graphql", g.graphql)
	mux.HandleFunc("GET /raw/{id}", g.raw)
	mux.HandleFunc("GET /block/height/{height}", g.blockByHeight)
	mux.HandleFunc("GET /block/hash/{id}", g.blockByHash)
	mux.HandleFunc("GET /healthz", g.healthz)
	mux.HandleFunc("GET /{id}", g.data)
	return httpx.Wrap(withCORS(mux))
}

// healthz answers a load balancer: 200 while the store (index and object
// storage) answers, 503 when it does not.
func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := g.store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// withCORS lets browser clients (aoconnect in a page) call the gateway.
func withCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "*")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// serverError answers 500 for store failures, without exposing details.
func (g *Gateway) serverError(w http.ResponseWriter, r *http.Request, err error) {
	g.log.Error("gateway request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func validID(id string) bool {
	_, err := ans104.DecodeID(id)
	return err == nil
}

func (g *Gateway) info(w http.ResponseWriter, r *http.Request) {
	b := g.store.Current()
	writeJSON(w, http.StatusOK, map[string]any{
		"network": g.cfg.Network, "version": 5, "release": 1, "height": b.Height, "current": b.ID,
		"blocks": b.Height + 1, "peers": 0, "queue_length": 0, "node_state_latency": 0,
	})
}

func (g *Gateway) txAnchor(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, g.store.Current().ID)
}

func (g *Gateway) price(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.PathValue("bytes"), 10, 64)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, "invalid byte count %q", r.PathValue("bytes"))
		return
	}
	// ArLocal's formula, so that clients computing rewards see plausible numbers.
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, strconv.FormatInt(int64(float64(n)/1000*65595508+0.5), 10))
}

// item looks up the item named by the {id} path value, answering 400 or 404
// itself when there is none.
func (g *Gateway) item(w http.ResponseWriter, r *http.Request) (*Item, bool) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusBadRequest, "invalid id %q", id)
		return nil, false
	}
	it, err := g.store.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "transaction %s not found", id)
		return nil, false
	}
	if err != nil {
		g.serverError(w, r, err)
		return nil, false
	}
	return it, true
}

// tx answers in the L1 transaction JSON form (tags and data base64url).
func (g *Gateway) tx(w http.ResponseWriter, r *http.Request) {
	it, ok := g.item(w, r)
	if !ok {
		return
	}
	tags := make([]map[string]string, len(it.Tags))
	for i, t := range it.Tags {
		tags[i] = map[string]string{"name": ans104.Base64URL([]byte(t.Name)), "value": ans104.Base64URL([]byte(t.Value))}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"format": 2, "id": it.ID, "last_tx": ans104.Base64URL(it.Anchor), "owner": ans104.Base64URL(it.Owner),
		"tags": tags, "target": it.Target, "quantity": "0", "data": "", "data_size": strconv.FormatInt(it.DataSize, 10),
		"data_root": "", "reward": "0", "signature": ans104.Base64URL(it.Signature),
	})
}

func (g *Gateway) txStatus(w http.ResponseWriter, r *http.Request) {
	it, ok := g.item(w, r)
	if !ok {
		return
	}
	if it.Block == nil {
		// As Arweave: accepted but not yet in a block.
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "Pending")
		return
	}
	cur := g.store.Current()
	writeJSON(w, http.StatusOK, map[string]any{
		"block_height": it.Block.Height, "block_indep_hash": it.Block.ID,
		"number_of_confirmations": cur.Height - it.Block.Height + 1,
	})
}

// upload is the bundler API: the body is one signed data item (a bundle item
// is unbundled and indexed too) or a raw binary bundle.
func (g *Gateway) upload(w http.ResponseWriter, r *http.Request) {
	body, release, err := httpx.ReadBody(w, r, g.uploads, g.cfg.MaxItemSize)
	defer release()
	if err != nil {
		code := httpx.Status(err)
		if code == http.StatusRequestEntityTooLarge {
			writeError(w, code, "body is larger than %d bytes", g.cfg.MaxItemSize)
		} else {
			writeError(w, code, "reading body: %v", err)
		}
		return
	}
	if len(body) > 0 && body[0] == '{' {
		writeError(w, http.StatusBadRequest, "L1 transactions (JSON) are not accepted; post a signed ANS-104 data item as application/octet-stream")
		return
	}
	d, err := ans104.Parse(body)
	if err == nil {
		_, err = g.store.put(r.Context(), d, g.bundler != nil)
	}
	var inv *InvalidError
	if err != nil && !errors.As(err, &inv) && d != nil {
		g.serverError(w, r, err)
		return
	}
	if err != nil {
		// Not a valid item: it may be a raw bundle, whose first bytes (the
		// item count) can also read as an item header.
		if _, berr := ans104.ParseBundle(body); berr == nil {
			ids, err := g.store.PutBundle(r.Context(), body)
			if errors.As(err, &inv) {
				writeError(w, http.StatusBadRequest, "invalid bundle: %v", err)
				return
			}
			if err != nil {
				g.serverError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"ids": ids, "timestamp": time.Now().UnixMilli()})
			return
		}
		if d == nil {
			writeError(w, http.StatusBadRequest, "not a data item or bundle: %v", err)
		} else {
			writeError(w, http.StatusBadRequest, "invalid data item: %v", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID(), "timestamp": time.Now().UnixMilli(), "owner": d.OwnerAddress()})
}

func (g *Gateway) graphql(w http.ResponseWriter, r *http.Request) {
	var body []byte
	var req gqlRequest
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		req.Query, req.OperationName = q.Get("query"), q.Get("operationName")
		if v := q.Get("variables"); v != "" {
			if err := json.Unmarshal([]byte(v), &req.Variables); err != nil {
				writeError(w, http.StatusBadRequest, "variables: %v", err)
				return
			}
		}
		body, _ = json.Marshal(req)
	} else {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "GraphQL request larger than 1 MiB")
			return
		}
		if req, err = decodeGraphQLRequest(body); err != nil {
			writeError(w, http.StatusBadRequest, "request body is not GraphQL JSON: %v", err)
			return
		}
	}
	if strings.TrimSpace(req.Query) == "" {
		writeError(w, http.StatusBadRequest, "no query")
		return
	}
	release, err := g.queries.Acquire(r.Context(), 1)
	if errors.Is(err, httpx.ErrBusy) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, gqlErrors("too many GraphQL queries at once; retry later"))
		return
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, gqlErrors("request canceled"))
		return
	}
	resp, refused := func() (*graphql.Response, bool) {
		defer release() // also if the query panics; not held while the answer is written
		return g.gql.exec(r.Context(), req)
	}()
	if refused {
		// As graphql-over-HTTP answers a request that cannot run: 400 with
		// the errors and no data.
		writeJSON(w, http.StatusBadRequest, resp)
		return
	}
	if g.upstream != nil && len(resp.Errors) == 0 && emptyAnswer(resp.Data) {
		if out, err := g.upstream.graphql(r.Context(), body); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Write(out)
			return
		} else {
			g.log.Warn("upstream graphql failed", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// gqlErrors is a GraphQL answer with one error and no data.
func gqlErrors(msg string) map[string]any {
	return map[string]any{"errors": []map[string]string{{"message": msg}}}
}

// emptyAnswer reports whether every top-level field of a GraphQL answer is null
// or a connection without edges: nothing local matched.
func emptyAnswer(data json.RawMessage) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	for _, v := range top {
		if string(v) == "null" {
			continue
		}
		var conn struct {
			Edges []json.RawMessage `json:"edges"`
		}
		if json.Unmarshal(v, &conn) != nil || len(conn.Edges) > 0 || !bytes.Contains(v, []byte(`"edges"`)) {
			return false
		}
	}
	return true
}

// raw serves the data bytes of an item, with no content processing.
func (g *Gateway) raw(w http.ResponseWriter, r *http.Request) { g.serveData(w, r, false) }

// data serves the data of an item with its Content-Type and, as HyperBEAM's
// gateway does and the reference MU expects, its tags as headers.
func (g *Gateway) data(w http.ResponseWriter, r *http.Request) { g.serveData(w, r, true) }

// headerSkip lists tag names not turned into headers: they would clash with
// headers the server sets, or the MU ignores them anyway.
var headerSkip = map[string]bool{
	"content-length": true, "content-type": true, "content-range": true, "accept-ranges": true,
	"transfer-encoding": true, "connection": true, "date": true, "location": true, "server": true,
	"content-encoding": true, "cache-control": true, "vary": true, "etag": true, "last-modified": true,
	"access-control-allow-origin": true, "set-cookie": true, "status": true, "keep-alive": true,
	"trailer": true, "upgrade": true, "te": true, "proxy-authenticate": true, "www-authenticate": true,
}

func (g *Gateway) serveData(w http.ResponseWriter, r *http.Request, withTags bool) {
	id := r.PathValue("id")
	if !validID(id) {
		writeError(w, http.StatusNotFound, "%q is not a transaction id", id)
		return
	}
	it, err := g.store.Get(r.Context(), id)
	var data []byte
	if err == nil {
		// Large data is held in memory while it is served: a share of the
		// read limiter, by its size, bounds how much is held at once.
		if it.DataSize >= 1<<20 {
			release, err := g.reads.Acquire(r.Context(), it.DataSize)
			if err != nil {
				w.Header().Set("Retry-After", "5")
				writeError(w, http.StatusServiceUnavailable, "too many large reads at once; retry later")
				return
			}
			defer release()
		}
		data, err = g.store.itemData(r.Context(), it)
	}
	var contentType string
	switch {
	case err == nil:
		contentType = it.ContentType
	case errors.Is(err, ErrNotFound):
		contentType, data, err = g.readThrough(r.Context(), id)
		if errors.Is(err, ErrNotFound) {
			writeError(w, http.StatusNotFound, "transaction %s not found", id)
			return
		}
		if err != nil {
			g.log.Warn("upstream read failed", "id", id, "err", err)
			writeError(w, http.StatusBadGateway, "reading %s from the upstream gateway failed", id)
			return
		}
	default:
		g.serverError(w, r, err)
		return
	}
	h := w.Header()
	if withTags && it != nil {
		for _, t := range it.Tags {
			name := strings.ToLower(t.Name)
			if headerSkip[name] || strings.HasPrefix(name, "x-") || !validHeaderName(t.Name) || !validHeaderValue(t.Value) {
				continue
			}
			h.Add(t.Name, t.Value)
		}
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	// ServeContent answers HEAD with Content-Length and honours Range (206).
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// readThrough reads data that is not local from the upstream gateway and caches it.
func (g *Gateway) readThrough(ctx context.Context, id string) (string, []byte, error) {
	ct, data, err := g.store.cachedData(ctx, id)
	if err == nil || !errors.Is(err, ErrNotFound) || g.upstream == nil {
		return ct, data, err
	}
	ct, data, err = g.upstream.fetchData(ctx, id, g.cfg.MaxItemSize)
	if err != nil {
		return "", nil, err
	}
	if err := g.store.cacheData(ctx, id, ct, data); err != nil {
		g.log.Warn("caching upstream data failed", "id", id, "err", err)
	}
	return ct, data, nil
}

func blockJSON(b Block) map[string]any {
	return map[string]any{"indep_hash": b.ID, "height": b.Height, "previous_block": b.Previous, "timestamp": b.Timestamp, "txs": []string{}}
}

func (g *Gateway) blockByHeight(w http.ResponseWriter, r *http.Request) {
	h, err := strconv.ParseInt(r.PathValue("height"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid height %q", r.PathValue("height"))
		return
	}
	b, err := g.store.Block(r.Context(), h)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "no block at height %d", h)
		return
	}
	if err != nil {
		g.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, blockJSON(b))
}

func (g *Gateway) blockByHash(w http.ResponseWriter, r *http.Request) {
	bs, _, err := g.store.Blocks(r.Context(), BlockQuery{IDs: []string{r.PathValue("id")}, First: 1})
	if err != nil {
		g.serverError(w, r, err)
		return
	}
	if len(bs) == 0 {
		writeError(w, http.StatusNotFound, "block %s not found", r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, blockJSON(bs[0]))
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c <= ' ' || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 || c == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters, which could split headers.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
