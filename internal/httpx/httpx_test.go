package httpx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs h behind Wrap on a real loopback server with NewServer's settings.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewServer(Wrap(h))
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

func TestJSONErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("0123456789"))
	})
	mux.HandleFunc("GET /own", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, `{"error":"mine","extra":1}`)
	})
	mux.HandleFunc("GET /text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "plain success")
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, strings.Repeat("x", 5000), http.StatusBadGateway)
	})
	base := serve(t, mux)
	for _, tc := range []struct {
		method, path, rng string
		code              int
		ctype, body       string // body: exact, or the "error" value when ctype is JSON
	}{
		{"GET", "/nope", "", 404, "application/json", "404 page not found"},
		{"POST", "/data", "", 405, "application/json", "Method Not Allowed"},
		{"GET", "/data", "bytes=50-60", 416, "application/json", "invalid range: failed to overlap"},
		{"GET", "/data", "bytes=2-3", 206, "", "23"},
		{"GET", "/own", "", 418, "application/json", `{"error":"mine","extra":1}`},
		{"GET", "/text", "", 200, "text/plain", "plain success"},
		{"GET", "/fail", "", 502, "application/json", strings.Repeat("x", maxErrorText)},
	} {
		t.Run(tc.method+tc.path+tc.rng, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
				t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			if tc.ctype == "application/json" && !strings.HasPrefix(tc.body, "{") {
				var e struct{ Error string }
				if err := json.Unmarshal(b, &e); err != nil || e.Error != tc.body {
					t.Fatalf("body %s, want error %q", b, tc.body)
				}
				return
			}
			if string(b) != tc.body {
				t.Fatalf("body %q, want %q", b, tc.body)
			}
		})
	}
	// 405 keeps its Allow header.
	resp, err := http.Post(base+"/data", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Allow") == "" {
		t.Errorf("405 lost its Allow header: %v", resp.Header)
	}
}

func TestLargeHeadersAreJSON(t *testing.T) {
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tc := range []struct {
		size  int
		code  int
		ctype string
	}{
		{1 << 10, 200, ""},
		{100 << 10, 431, "application/json"},
	} {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", tc.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%d header bytes: %d %q %s", tc.size, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

// TestTrickledBodyIsCut: a body that arrives at 10 B/s is cut and its
// connection closed; one at full speed is read whole.
func TestTrickledBodyIsCut(t *testing.T) {
	oldGrace, oldRate := bodyGrace, minBodyRate
	bodyGrace, minBodyRate = 4*time.Second, 1000
	t.Cleanup(func() { bodyGrace, minBodyRate = oldGrace, oldRate })

	var lastErr atomic.Value
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, release, err := ReadBody(w, r, nil, 1<<20)
		defer release()
		if err != nil {
			lastErr.Store(err)
			w.WriteHeader(Status(err))
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	}))
	addr := strings.TrimPrefix(base, "http://")

	// Full speed: 200 KB at once.
	resp, err := http.Post(base, "application/octet-stream", bytes.NewReader(make([]byte, 200<<10)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(200<<10) {
		t.Fatalf("fast body: %d %s", resp.StatusCode, b)
	}

	// Trickle: 10 bytes a second of a 1000-byte body.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				if _, err := conn.Write(make([]byte, 10)); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body after %v: %v", time.Since(start), err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("trickled body: %d, want 408", resp.StatusCode)
	}
	if e, _ := lastErr.Load().(error); !errors.Is(e, ErrSlowBody) {
		t.Errorf("handler saw %v, want ErrSlowBody", e)
	}
	// The connection is closed, not kept for another request.
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after a trickled body")
	}
	// Answered at the cut (bodyGrace is 4 s here), not only after net/http
	// has waited another bodyGrace, in vain, to drain the rest of the body.
	if d := time.Since(start); d > 7*time.Second {
		t.Errorf("answered %v after the body started", d)
	}
}

// TestBodyEndClearsDeadline: a handler that works long after reading its body
// is not cut by the body's deadline.
func TestBodyEndClearsDeadline(t *testing.T) {
	oldGrace, oldRate := bodyGrace, minBodyRate
	bodyGrace, minBodyRate = 200*time.Millisecond, 1000
	t.Cleanup(func() { bodyGrace, minBodyRate = oldGrace, oldRate })
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, release, err := ReadBody(w, r, nil, 1<<20)
		defer release()
		if err != nil {
			w.WriteHeader(Status(err))
			return
		}
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-r.Context().Done():
			w.WriteHeader(499)
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	}))
	// Chunked (read to EOF) and with a Content-Length (read to its end).
	for _, body := range []io.Reader{io.MultiReader(strings.NewReader("hello")), strings.NewReader("hello")} {
		resp, err := http.Post(base, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "5" {
			t.Fatalf("%T: %d %s", body, resp.StatusCode, b)
		}
	}
}

func TestLimiter(t *testing.T) {
	ctx := context.Background()
	short := NewLimiter(10, 200*time.Millisecond)
	r0, err := short.Acquire(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	// Does not fit: waits, then gives up with ErrBusy.
	if _, err := short.Acquire(ctx, 6); !errors.Is(err, ErrBusy) {
		t.Fatalf("second 6 of 10: %v", err)
	}
	r0()

	l := NewLimiter(10, 10*time.Second)
	r1, err := l.Acquire(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	// Larger than the capacity: clamped, waits for everything.
	got := make(chan func(), 1)
	go func() {
		r, err := l.Acquire(ctx, 100)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	// First come, first served: a small one queued behind the large one waits too.
	time.Sleep(20 * time.Millisecond)
	small := make(chan error, 1)
	go func() {
		r, err := l.Acquire(ctx, 1)
		if err == nil {
			r()
		}
		small <- err
	}()
	select {
	case <-got:
		t.Fatal("granted while held")
	case err := <-small:
		t.Fatalf("small one overtook the queue: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	r1()
	r1() // a second release is harmless
	r := <-got
	r()
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	// A canceled wait leaves nothing behind.
	r2, _ := l.Acquire(ctx, 10)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(cctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("canceled wait: %v", err)
	}
	r2()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.used != 0 || len(l.waiters) != 0 {
		t.Fatalf("used %d, %d waiters after all released", l.used, len(l.waiters))
	}
}

// TestConcurrentLargeBodiesAreBounded: twelve concurrent 4 MiB uploads against
// a 10 MiB limiter never hold more than 10 MiB at once; all complete.
func TestConcurrentLargeBodiesAreBounded(t *testing.T) {
	l := NewLimiter(10<<20, 30*time.Second)
	var mu sync.Mutex
	var held, peak int64
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, release, err := ReadBody(w, r, l, 8<<20)
		defer release()
		if err != nil {
			w.WriteHeader(Status(err))
			return
		}
		mu.Lock()
		held += int64(len(b))
		peak = max(peak, held)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		held -= int64(len(b))
		mu.Unlock()
	}))
	var wg sync.WaitGroup
	codes := make([]int, 12)
	for i := range codes {
		wg.Go(func() {
			resp, err := http.Post(base, "application/octet-stream", bytes.NewReader(make([]byte, 4<<20)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("upload %d: %d", i, c)
		}
	}
	if peak > 10<<20 {
		t.Errorf("%d bytes held at once, limit %d", peak, 10<<20)
	}
}

func TestReadBodyErrors(t *testing.T) {
	l := NewLimiter(2<<20, 100*time.Millisecond)
	hold, _ := l.Acquire(context.Background(), 2<<20)
	defer hold()
	for _, tc := range []struct {
		name  string
		body  io.Reader
		cl    int64
		code  int
		retry bool
		free  bool // without the limiter
	}{
		{"small passes a full limiter", strings.NewReader("abc"), 3, 200, false, false},
		{"declared too large", strings.NewReader("abc"), 5 << 20, 413, false, false},
		{"unknown length too large", bytes.NewReader(make([]byte, 5<<20)), -1, 413, false, true},
		{"unknown length waits as the limit", strings.NewReader("abc"), -1, 503, true, false},
		{"large waits then busy", bytes.NewReader(make([]byte, 1<<20)), 1 << 20, 503, true, false},
		{"short body", strings.NewReader("ab"), 3, 400, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", tc.body)
			r.ContentLength = tc.cl
			w := httptest.NewRecorder()
			lim := l
			if tc.free {
				lim = nil
			}
			_, release, err := ReadBody(w, r, lim, 4<<20)
			release()
			code := 200
			if err != nil {
				code = Status(err)
			}
			if code != tc.code || (w.Header().Get("Retry-After") != "") != tc.retry {
				t.Fatalf("%d (%v), Retry-After %q", code, err, w.Header().Get("Retry-After"))
			}
		})
	}
}

// TestUnreadBodyAnswered: a handler that answers without reading a large
// declared body is answered at once (net/http closes rather than drains), and
// one that leaves a small body unread while the client stalls is cut.
func TestUnreadBodyAnswered(t *testing.T) {
	oldGrace := bodyGrace
	bodyGrace = 500 * time.Millisecond
	t.Cleanup(func() { bodyGrace = oldGrace })
	base := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}))
	for _, cl := range []int{10 << 20, 1000} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", cl)
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("Content-Length %d, no body sent: no answer: %v", cl, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("Content-Length %d: %d", cl, resp.StatusCode)
		}
	}
}
