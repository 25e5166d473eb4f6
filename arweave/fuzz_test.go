package arweave

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aonode/aonode/ans104"
)

// FuzzUpload posts arbitrary bodies to the bundler route: the answer is a 2xx
// or a 4xx, never a 5xx or a panic.
func FuzzUpload(f *testing.F) {
	s, err := Open(context.Background(), f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	h := NewGateway(s, Config{MaxItemSize: 1 << 16}).Handler()
	sg := newSigner()
	d, _ := ans104.Sign(sg, []byte("x"), ans104.Options{Tags: []ans104.Tag{{Name: "A", Value: "b"}}})
	b, _ := ans104.Sign(sg, ans104.BuildBundle([]*ans104.DataItem{d}), ans104.Options{Tags: ans104.BundleTags})
	f.Add(d.Bytes())
	f.Add(b.Bytes())
	f.Add(ans104.BuildBundle([]*ans104.DataItem{d}))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/tx/arweave", bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
}

// FuzzGraphQL sends arbitrary query text: never a 5xx or a panic.
func FuzzGraphQL(f *testing.F) {
	s, err := Open(context.Background(), f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	h := NewGateway(s, Config{}).Handler()
	for _, q := range []string{q1, q3, q4, q5, q6, q8, q10, `{ transactions(after: "AAAAAAAAAAE") { edges { cursor } } }`} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		w := httptest.NewRecorder()
		body, _ := jsonMarshal(map[string]any{"query": q, "variables": map[string]any{"ids": []string{"x"}, "owner": "o", "min": 0, "limit": 5}})
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
}
