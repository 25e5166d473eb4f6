// Package explorer serves a web explorer of an AO network: its units, its
// processes, their schedules and results, and the flow of messages between
// them. It is a static page (plain HTML, CSS and JavaScript modules embedded
// in the binary: no build step, no CDN, works offline) that reads only the
// units' public HTTP APIs, through a read-only proxy on the explorer's own
// origin, so that one port reaches the whole network (also from another
// machine when the units listen on loopback) and the browser needs no CORS.
//
// The proxy passes GET and HEAD to every unit and exactly two POSTs, both
// read-only: the gateway's GraphQL and the CU's dry-run. Nothing written
// through the explorer can schedule a message or change a process.
package explorer

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aonode/aonode/internal/httpx"
)

//go:embed web
var webFS embed.FS

// Config names the units the explorer shows. GatewayURL, SUURL, CUURL and
// MUURL are required; HBURL (the AO-Core surface, for patch@1.0 state) is
// optional.
type Config struct {
	GatewayURL, SUURL, CUURL, MUURL, HBURL string
	// Version is shown on the Network page (e.g. the module version and commit).
	Version string
	// Started is when the network started (default: when New was called);
	// the Network page shows the uptime from it.
	Started time.Time
	// Client reaches the units (default: a client with a 60 s timeout).
	Client *http.Client
}

// Explorer is the web explorer's HTTP surface.
type Explorer struct {
	cfg   Config
	units map[string]*url.URL
	h     http.Handler
}

// MaxPostBytes bounds the body of a proxied GraphQL query or dry-run.
const MaxPostBytes = 1 << 20

// New checks the unit URLs and builds the explorer.
func New(cfg Config) (*Explorer, error) {
	if cfg.Version == "" {
		cfg.Version = buildVersion()
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 60 * time.Second}
	}
	e := &Explorer{cfg: cfg, units: map[string]*url.URL{}}
	for _, u := range []struct{ name, url string }{
		{"gateway", cfg.GatewayURL}, {"su", cfg.SUURL}, {"cu", cfg.CUURL}, {"mu", cfg.MUURL}, {"hb", cfg.HBURL},
	} {
		if u.url == "" {
			if u.name == "hb" {
				continue
			}
			return nil, fmt.Errorf("explorer: the %s URL is required", u.name)
		}
		p, err := url.Parse(strings.TrimRight(u.url, "/"))
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("explorer: %s URL %q is not an http(s) URL", u.name, u.url)
		}
		e.units[u.name] = p
	}
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	static := http.FileServerFS(web)
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The page is small and changes with the binary: always revalidate.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /api/config", e.config)
	mux.HandleFunc("GET /api/verify/{id}", e.verify)
	// Other methods get the mux's 405.
	mux.HandleFunc("GET /api/{unit}/{path...}", e.proxy)
	mux.HandleFunc("POST /api/{unit}/{path...}", e.proxy)
	e.h = httpx.Wrap(mux)
	return e, nil
}

// Handler serves the page under / and the proxy under /api/.
func (e *Explorer) Handler() http.Handler { return e.h }

func (e *Explorer) config(w http.ResponseWriter, r *http.Request) {
	units := []map[string]string{}
	for _, u := range []struct{ name, label, url string }{
		{"gateway", "Gateway", e.cfg.GatewayURL}, {"mu", "Messenger Unit (MU)", e.cfg.MUURL},
		{"su", "Scheduler Unit (SU)", e.cfg.SUURL}, {"cu", "Compute Unit (CU)", e.cfg.CUURL},
		{"hb", "AO-Core surface", e.cfg.HBURL},
	} {
		if u.url != "" {
			units = append(units, map[string]string{"name": u.name, "label": u.label, "url": u.url})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"units": units, "version": e.cfg.Version, "started": e.cfg.Started.UnixMilli(), "now": time.Now().UnixMilli(),
	})
}

// proxy forwards a read to a unit: GET and HEAD anywhere, POST only to the
// gateway's /graphql and the CU's /dry-run (bodies up to MaxPostBytes).
func (e *Explorer) proxy(w http.ResponseWriter, r *http.Request) {
	name, path := r.PathValue("unit"), "/"+r.PathValue("path")
	target, ok := e.units[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no unit %q (gateway, su, cu, mu, hb)", name))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		if !(name == "gateway" && path == "/graphql") && !(name == "cu" && path == "/dry-run") {
			writeError(w, http.StatusMethodNotAllowed, "the explorer is read-only: POST goes only to the gateway's /graphql and the CU's /dry-run")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxPostBytes)
	default:
		writeError(w, http.StatusMethodNotAllowed, "the explorer is read-only")
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.URL.Path = target.Path + path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = target.Host
			// Only what the units read: no cookies of the explorer's origin.
			pr.Out.Header.Del("Cookie")
		},
		Transport: e.cfg.Client.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxPostBytes))
				return
			}
			writeError(w, http.StatusBadGateway, fmt.Sprintf("the %s at %s did not answer: %v", name, target, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// get reads a unit's answer, up to limit bytes.
func (e *Explorer) get(ctx context.Context, rawURL string, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, fmt.Errorf("reading %s: %w", rawURL, err)
	}
	if int64(len(b)) > limit {
		return resp.StatusCode, nil, errTooLarge
	}
	return resp.StatusCode, b, nil
}

// buildVersion names this binary's module version and commit.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

var errTooLarge = errors.New("explorer: answer too large")

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
