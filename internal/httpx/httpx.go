// Package httpx is the HTTP hardening the four aonode units share: server
// timeouts, a minimum transfer rate for request bodies, JSON errors where
// net/http would answer in plain text, and a limiter on the bytes of large
// bodies held in memory at once.
//
// Every unit answers errors as {"error": "..."}; net/http's own answers (the
// mux's 404 and 405, ServeContent's 416) are plain text unless Wrap turns them
// into that shape.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Server limits. ReadHeaderTimeout and IdleTimeout end connections that send
// nothing; bodies are bounded by Wrap's minimum rate rather than a whole-request
// ReadTimeout, which would cut legitimate large uploads on slow links.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 2 * time.Minute
	// MaxHeaderBytes is where net/http itself refuses a request (431, in plain
	// text, before any handler runs). Wrap refuses from maxJSONHeaderBytes on
	// with a JSON 431, so only requests past this hard bound get plain text.
	MaxHeaderBytes = 256 << 10
	// BodyGrace and MinBodyRate bound how slowly a body may arrive: by time
	// BodyGrace + n/MinBodyRate after its first byte was asked for, n bytes
	// must have come. A body that trickles slower is cut (the read fails with
	// ErrSlowBody and the connection is closed).
	BodyGrace   = 10 * time.Second
	MinBodyRate = 32 << 10 // bytes per second, averaged over the whole body

	maxJSONHeaderBytes = 64 << 10
	maxErrorText       = 1 << 10
)

// bodyGrace and minBodyRate are the limits in force (tests shorten them).
var bodyGrace, minBodyRate = BodyGrace, float64(MinBodyRate)

// ErrSlowBody reports a request body that arrived slower than MinBodyRate.
var ErrSlowBody = errors.New("httpx: request body arrived too slowly")

// NewServer returns an http.Server for h with the shared timeouts and header
// bound. h should already be wrapped by Wrap (each unit's Handler does that).
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Wrap returns h with the shared request hardening: request bodies must keep
// MinBodyRate, headers past maxJSONHeaderBytes get a JSON 431, and error
// answers that net/http writes as text/plain (404, 405, 416, http.Error) are
// rewritten as {"error": "<the text>"} with the same status and headers.
func Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r) > maxJSONHeaderBytes {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestHeaderFieldsTooLarge, "request headers are larger than 64 KiB")
			return
		}
		jw := &jsonErrors{ResponseWriter: w}
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			h.ServeHTTP(jw, r)
			jw.finish()
			return
		}
		// The handler gets a copy of the request reading through rateBody;
		// the server's own request keeps its body, whose type tells net/http
		// after the handler whether to drain the rest or close the connection.
		rb := &rateBody{ReadCloser: r.Body, rc: http.NewResponseController(w)}
		r2 := r.WithContext(r.Context())
		r2.Body = rb
		h.ServeHTTP(jw, r2)
		jw.finish()
		switch {
		case rb.failed:
			// Cut: net/http must not wait for the rest before answering.
			rb.rc.SetReadDeadline(time.Now())
		case !rb.off:
			// net/http may drain what is left of the body (under 256 KiB):
			// bound that too.
			rb.rc.SetReadDeadline(time.Now().Add(bodyGrace))
		}
	})
}

func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// jsonErrors turns a text/plain error answer into the JSON error shape. The
// text is held (up to maxErrorText bytes) until the handler returns.
type jsonErrors struct {
	http.ResponseWriter
	wroteHeader bool
	intercept   bool
	code        int
	text        []byte
}

func (w *jsonErrors) WriteHeader(code int) {
	if w.wroteHeader || code < 200 {
		if !w.intercept {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	w.wroteHeader = true
	if code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.intercept, w.code = true, code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonErrors) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.intercept {
		w.text = append(w.text, p[:min(len(p), maxErrorText-len(w.text))]...)
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Flush passes through, except while an error is being held.
func (w *jsonErrors) Flush() {
	if w.intercept {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *jsonErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *jsonErrors) finish() {
	if !w.intercept {
		return
	}
	msg := strings.TrimSpace(string(w.text))
	if msg == "" {
		msg = http.StatusText(w.code)
	}
	w.Header().Del("X-Content-Type-Options")
	writeError(w.ResponseWriter, w.code, msg)
}

// rateBody enforces MinBodyRate with read deadlines on the connection. Once
// the body has ended it sets none: net/http then clears the deadline and
// starts a background read on the connection, which must not time out (that
// would cancel the request) while the handler is still working.
type rateBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	start  time.Time
	set    time.Time // the deadline in force
	n      int64
	off    bool // deadlines unsupported (a test recorder) or the body ended
	failed bool // a read failed (the connection cannot be read further)
}

func (b *rateBody) Read(p []byte) (int, error) {
	if b.off {
		return b.ReadCloser.Read(p)
	}
	now := time.Now()
	if b.start.IsZero() {
		b.start = now
	}
	// Move the deadline forward in steps of a second, not on every read.
	dl := b.start.Add(bodyGrace + time.Duration(float64(b.n)/minBodyRate*float64(time.Second)))
	if dl.Sub(b.set) >= time.Second {
		if err := b.rc.SetReadDeadline(dl); err != nil {
			b.off = true
		} else {
			b.set = dl
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.off = true
	} else if err != nil {
		b.failed = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = ErrSlowBody
		}
	}
	return n, err
}

func (b *rateBody) Close() error {
	return b.ReadCloser.Close()
}

// ShutdownGrace is how long Shutdown lets requests in flight finish before
// it cancels their contexts.
const ShutdownGrace = 5 * time.Second

// Shutdown stops servers gracefully: they stop accepting at once and the
// requests in flight get ShutdownGrace to finish; then cancel (which must
// cancel the servers' BaseContext) tells the rest to stop, and they get
// until ctx ends. Long requests (an evaluation, an MU waiting for its SU)
// end with an error instead of holding the whole stop to its deadline;
// what they had acknowledged is durable already.
func Shutdown(ctx context.Context, cancel context.CancelFunc, servers ...*http.Server) error {
	shut := func(ctx context.Context) []error {
		errs := make([]error, len(servers))
		var wg sync.WaitGroup
		for i, hs := range servers {
			wg.Go(func() { errs[i] = hs.Shutdown(ctx) })
		}
		wg.Wait()
		return errs
	}
	gctx, gcancel := context.WithTimeout(ctx, ShutdownGrace)
	errs := shut(gctx)
	gcancel()
	late := false
	for _, err := range errs {
		late = late || err != nil
	}
	if !late {
		return nil
	}
	cancel()
	return errors.Join(shut(ctx)...)
}
