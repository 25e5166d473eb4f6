package arweave

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/httpx"
)

// postGQL sends a GraphQL request and returns the status and raw answer.
func (f *fixture) postGQL(query string, vars map[string]any) (int, []byte) {
	f.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post(f.srv.URL+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// aliases repeats field as n aliased root fields.
func aliases(n int, field string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: %s", i, field)
	}
	b.WriteString(" }")
	return b.String()
}

// TestGraphQLCostBound: the alias bomb of issue 19 (850 aliases of
// transactions(first:100)) is refused quickly with a GraphQL error; queries
// within the bounds, however written, still run.
func TestGraphQLCostBound(t *testing.T) {
	f := newFixture(t, Config{})
	s := newSigner()
	for i := range 120 {
		f.put(f.sign(s, fmt.Sprint(i), ans104.Options{Tags: []ans104.Tag{{Name: "N", Value: fmt.Sprint(i)}}}))
	}
	conn := `transactions(first: 100) { edges { node { id owner { address } tags { name value } } } }`
	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
		code  int
		want  string // in the answer
	}{
		{"alias bomb", aliases(850, `transactions(first:100){edges{node{id}}}`), nil, 400, "query too costly"},
		{"ten full pages", aliases(10, conn), nil, 200, `"a9":{"edges":[{`},
		{"eleven full pages", aliases(11, conn), nil, 400, "query too costly"},
		{"first above the maximum counts as 100", aliases(11, `transactions(first: 1000) { edges { cursor } }`), nil, 400, "query too costly"},
		{"default page size", aliases(100, `transactions { edges { cursor } }`), nil, 200, `"a99"`},
		{"too many root fields", aliases(101, `transaction(id: "x") { id }`), nil, 400, "more than 100 root fields"},
		{"blocks count too", aliases(11, `blocks(first: 100) { edges { cursor } }`), nil, 400, "query too costly"},
		{"through a variable", "query($n: Int) " + aliases(11, `transactions(first: $n) { edges { cursor } }`), map[string]any{"n": 100}, 400, "query too costly"},
		{"through a fragment", `query { ...F } fragment F on Query { ` + aliases(11, conn)[1:len(aliases(11, conn))-1] + ` }`, nil, 400, "query too costly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, b := f.postGQL(tc.query, tc.vars)
			if code != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %.300s", code, b)
			}
			if code == 400 {
				var out map[string]any
				if err := json.Unmarshal(b, &out); err != nil || out["data"] != nil || len(out["errors"].([]any)) != 1 {
					t.Fatalf("refusal is not one GraphQL error without data: %.300s", b)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("refusal took %v", d)
				}
			}
		})
	}
}

// TestGraphQLAnswerBound: items whose answer would pass the byte bound stop
// the query with an error instead of being rendered.
func TestGraphQLAnswerBound(t *testing.T) {
	f := newFixture(t, Config{})
	s := newSigner()
	tags := []ans104.Tag{{Name: "Big", Value: strings.Repeat("\x01", 3000)}}
	for i := range 100 {
		f.put(f.sign(s, fmt.Sprint(i), ans104.Options{Tags: append(tags, ans104.Tag{Name: "N", Value: fmt.Sprint(i)})}))
	}
	// 100 items of 3000 control bytes: about 1.8 MB of JSON per page.
	conn := `transactions(first: 100) { edges { node { id tags { name value } } } }`
	if code, b := f.postGQL(aliases(2, conn), nil); code != 200 {
		t.Fatalf("two pages: %d %.300s", code, b)
	}
	code, b := f.postGQL(aliases(10, conn), nil)
	if code != 400 || !strings.Contains(string(b), "answer too large") || len(b) > 1000 {
		t.Fatalf("ten pages: %d %.300s", code, b)
	}
}

// TestGraphQLConcurrencyBound: with every execution slot taken a query waits,
// and runs as soon as one is free.
func TestGraphQLConcurrencyBound(t *testing.T) {
	f := newFixture(t, Config{})
	var releases []func()
	for range maxConcurrentQueries {
		release, err := f.gw.queries.Acquire(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	done := make(chan int, 1)
	go func() {
		code, _ := f.postGQL(`{ transactions { edges { cursor } } }`, nil)
		done <- code
	}()
	select {
	case code := <-done:
		t.Fatalf("answered %d with every slot taken", code)
	case <-time.After(300 * time.Millisecond):
	}
	releases[0]()
	select {
	case code := <-done:
		if code != 200 {
			t.Fatalf("after a slot freed: %d", code)
		}
	case <-time.After(queryWait):
		t.Fatal("still waiting after a slot freed")
	}
}

// TestGraphQLArgumentErrorsAre400: errors in arguments and variables answer
// 400 with the errors and no data, as graphql-over-HTTP does.
func TestGraphQLArgumentErrorsAre400(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		want        string
	}{
		{"first not an int", `{ transactions(first: "x") { edges { cursor } } }`, nil, "Int cannot represent"},
		{"unknown argument", `{ transactions(nope: 1) { edges { cursor } } }`, nil, "Unknown argument"},
		{"variable of the wrong type", `query($n: Int) { transactions(first: $n) { edges { cursor } } }`, map[string]any{"n": "x"}, "could not unmarshal"},
		{"negative first", `{ transactions(first: -1) { edges { cursor } } }`, nil, "first must not be negative"},
		{"negative first beside a valid field", `{ a: transactions(first: -1) { edges { cursor } } b: transaction(id: "x") { id } }`, nil, "first must not be negative"},
		{"bad cursor", `{ transactions(after: "zz") { edges { cursor } } }`, nil, "invalid cursor"},
		{"bad block cursor", `{ blocks(after: "zz") { edges { cursor } } }`, nil, "invalid cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := f.postGQL(tc.query, tc.vars)
			var out map[string]any
			json.Unmarshal(b, &out)
			if code != 400 || out["data"] != nil || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %s", code, b)
			}
		})
	}
}

// TestGatewayErrorsAreJSON: net/http's own answers (mux 404 and 405, range
// 416) come in the gateway's JSON error shape.
func TestGatewayErrorsAreJSON(t *testing.T) {
	f := newFixture(t, Config{})
	w := f.world()
	for _, tc := range []struct {
		method, path, rng string
		code              int
	}{
		{"GET", "/nonsense/deeper/path", "", 404},
		{"DELETE", "/info", "", 405},
		{"PUT", "/graphql", "", 405},
		{"GET", "/raw/" + w.module.ID(), "bytes=100-200", 416},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error string }
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %q %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

// TestLargeBodiesWaitForMemory: a large upload and a large read wait while
// the memory for large bodies is taken, and proceed once it is given back.
func TestLargeBodiesWaitForMemory(t *testing.T) {
	f := newFixture(t, Config{MaxItemSize: 4 << 20})
	s := newSigner()
	big := f.sign(s, strings.Repeat("d", 3<<20/2), ans104.Options{})
	f.put(big)
	small := f.sign(s, "small", ans104.Options{})
	for _, tc := range []struct {
		name string
		lim  **httpx.Limiter
		do   func() int
	}{
		{"upload", &f.gw.uploads, func() int {
			code, _ := f.post("/tx", f.sign(s, strings.Repeat("u", 3<<20/2), ans104.Options{}).Bytes())
			return code
		}},
		{"read", &f.gw.reads, func() int {
			resp, err := http.Get(f.srv.URL + "/raw/" + big.ID())
			if err != nil {
				return 0
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release, err := (*tc.lim).Acquire(context.Background(), 1<<40)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan int, 1)
			go func() { done <- tc.do() }()
			select {
			case code := <-done:
				t.Fatalf("answered %d while the memory was taken", code)
			case <-time.After(300 * time.Millisecond):
			}
			// Small bodies do not wait.
			if code, _ := f.post("/tx", small.Bytes()); code != 200 {
				t.Fatalf("small upload: %d", code)
			}
			release()
			select {
			case code := <-done:
				if code != 200 {
					t.Fatalf("after release: %d", code)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("still waiting after release")
			}
		})
	}
}

// TestGraphQLFilterBounds: filters that would build an unbounded SQL query
// are refused with 400; the largest allowed ones run.
func TestGraphQLFilterBounds(t *testing.T) {
	f := newFixture(t, Config{})
	q := `query($tags: [TagFilter!], $ids: [ID!], $owners: [String!]) { transactions(tags: $tags, ids: $ids, owners: $owners) { edges { cursor } } }`
	tags := func(n, values int) []map[string]any {
		var out []map[string]any
		for i := range n {
			var vs []string
			for j := range values {
				vs = append(vs, fmt.Sprint("v", j))
			}
			out = append(out, map[string]any{"name": fmt.Sprint("T", i), "values": vs})
		}
		return out
	}
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprint("x", i)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		vars map[string]any
		code int
		want string
	}{
		{"50 tag filters", map[string]any{"tags": tags(50, 2)}, 200, `"edges":[]`},
		{"51 tag filters", map[string]any{"tags": tags(51, 1)}, 400, "at most 50 tag filters"},
		{"5000 values", map[string]any{"tags": tags(5, 1000)}, 200, `"edges":[]`},
		{"5001 values", map[string]any{"tags": tags(5, 1000), "ids": many(1)}, 400, "at most 5000 filter values"},
		{"1001 values in one filter", map[string]any{"owners": many(1001)}, 400, "at most 1000 values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := f.postGQL(q, tc.vars)
			if code != tc.code || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d %.300s", code, b)
			}
		})
	}
}
