package mu

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/wallet"
)

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"Messages":[{"Target":"t","Anchor":"a","Tags":[{"name":"A","value":"1"}],"Data":{"x":1}}],"Spawns":[{"Tags":[]}],"Assignments":[{"Processes":["p"],"Message":"m","BaseLayer":true}]}`))
	f.Add([]byte(`{"Messages":[{"Target":null}],"Error":"boom"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		for _, m := range r.Messages {
			tmpl, _ := MessageTemplate(m, "from", "mod", "root")
			for _, tag := range tmpl.Tags {
				if tag.Value == "" {
					t.Fatal("empty tag value in a template")
				}
			}
		}
	})
}

func FuzzParseCronPage(f *testing.F) {
	f.Add([]byte(`{"pageInfo":{"hasNextPage":true},"edges":[{"node":{"Messages":[]},"cursor":"abc"}]}`))
	f.Add([]byte(`{"edges":[{"node":null,"cursor":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { ParseCronPage(b) })
}

func FuzzParseTraceQuery(f *testing.F) {
	f.Add("debug=1&process=p&message=m&page=2&page-size=5")
	f.Add("debug=1&message=a&assign=b")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		tq, err := ParseTraceQuery(v)
		if err == nil && (tq.Page < 1 || tq.PageSize < 1 || tq.PageSize > 100) {
			t.Fatalf("accepted %+v", tq)
		}
	})
}

func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{"100/1m", "10/s", "0", "", "5/", "/1h", "-1/1h", "3/-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rl, err := ParseRateLimit(s)
		if err == nil && rl.N > 0 && rl.Interval <= 0 {
			t.Fatalf("accepted %q as %+v", s, rl)
		}
	})
}

func FuzzCheckItem(f *testing.F) {
	w, _ := wallet.Generate(wallet.Ed25519)
	d, _ := ans104.Sign(w, []byte("x"), ans104.Options{Target: make([]byte, 32), Tags: tg("Data-Protocol", "ao", "Type", "Message")})
	f.Add(d.Bytes())
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) { CheckItem(b) })
}

// FuzzHandler sends arbitrary bodies and queries to an MU whose units are
// unreachable: it must answer (never panic) and never with a 5xx for input
// it can reject itself.
func FuzzHandler(f *testing.F) {
	w, _ := wallet.Generate(wallet.Ed25519)
	dead := "http://127.0.0.1:1"
	m, err := New(context.Background(), Config{Signer: w, DataDir: f.TempDir(), GatewayURL: dead, CUURL: dead, IngestWait: 50 * time.Millisecond, MaxAttempts: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	h := m.Handler()
	f.Add("POST", "/", "", []byte("junk"))
	f.Add("POST", "/", "process-id=a&assign=b&exclude=x,y&base-layer", []byte{})
	f.Add("GET", "/", "debug=1&process=p&message=m", []byte{})
	f.Add("POST", "/monitor/abc", "", []byte{})
	f.Add("DELETE", "/monitor/"+randomID(), "", []byte{})
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		if method != "GET" && method != "POST" && method != "DELETE" {
			return
		}
		u := &url.URL{Path: "/" + path, RawQuery: query}
		req, err := http.NewRequest(method, "http://mu"+u.RequestURI(), bytes.NewReader(body))
		if err != nil {
			return // not a request a server would receive
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s: 500 %s", method, u, rec.Body)
		}
	})
}
