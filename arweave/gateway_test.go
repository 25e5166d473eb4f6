package arweave

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
)

type fixture struct {
	t     *testing.T
	store *Store
	srv   *httptest.Server
	gw    *Gateway
}

// sharedBackend, set by TestSharedGateway, makes newFixture open its store
// on PostgreSQL and object storage instead of SQLite.
var sharedBackend func(t *testing.T) Options

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	o := Options{Dir: t.TempDir()}
	if sharedBackend != nil {
		o = sharedBackend(t)
	}
	s, err := OpenWith(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	gw := NewGateway(s, cfg)
	srv := httptest.NewServer(gw.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	go gw.Run(ctx)
	t.Cleanup(func() { cancel(); srv.Close(); s.Close() })
	return &fixture{t: t, store: s, srv: srv, gw: gw}
}

var keySeed byte

func newSigner() ans104.Signer {
	keySeed++
	return ans104.NewEd25519Signer(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{keySeed}, 32)))
}

func (f *fixture) sign(s ans104.Signer, data string, opts ans104.Options) *ans104.DataItem {
	f.t.Helper()
	d, err := ans104.Sign(s, []byte(data), opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// post uploads an item through the bundler route and returns the answer.
func (f *fixture) post(path string, body []byte) (int, map[string]any) {
	f.t.Helper()
	resp, err := http.Post(f.srv.URL+path, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (f *fixture) put(d *ans104.DataItem) {
	f.t.Helper()
	if code, out := f.post("/tx/arweave", d.Bytes()); code != 200 || out["id"] != d.ID() {
		f.t.Fatalf("upload: %d %v", code, out)
	}
}

func (f *fixture) mine() Block {
	f.t.Helper()
	b, _, err := f.store.Mine(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// gql posts a GraphQL request exactly as a client would and decodes data.
func (f *fixture) gql(query string, vars map[string]any) map[string]any {
	f.t.Helper()
	code, raw := f.postGQL(query, vars)
	var out struct {
		Data   map[string]any `json:"data"`
		Errors []any          `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || code != 200 || len(out.Errors) > 0 {
		f.t.Fatalf("graphql %d: %s", code, raw)
	}
	return out.Data
}

// path walks decoded JSON: path(v, "transactions", "edges", 0, "node", "id").
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func edges(data map[string]any, field string) []any {
	e, _ := path(data, field, "edges").([]any)
	return e
}

func tagsOf(node any) []ans104.Tag {
	var out []ans104.Tag
	for _, t := range path(node, "tags").([]any) {
		out = append(out, ans104.Tag{Name: path(t, "name").(string), Value: path(t, "value").(string)})
	}
	return out
}

type aoWorld struct {
	module, process, oldLoc, newLoc, cp1, cp2, bundle, child *ans104.DataItem
	su, cu                                                   ans104.Signer
	mined                                                    Block
}

// world stores what AO units look up: a module, a process, Scheduler-Location
// records (one mined, one newer and pending), checkpoints and a bundle.
func (f *fixture) world() aoWorld {
	var w aoWorld
	w.su, w.cu = newSigner(), newSigner()
	user := newSigner()
	w.module = f.sign(user, "\x00asm", ans104.Options{Tags: []ans104.Tag{
		{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Module"},
		{Name: "Module-Format", Value: "wasm32-unknown-emscripten4"}, {Name: "Input-Encoding", Value: "JSON-V1"},
		{Name: "Output-Encoding", Value: "JSON-V1"}, {Name: "Content-Type", Value: "application/wasm"}}})
	w.oldLoc = f.sign(w.su, "", ans104.Options{Tags: []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Type", Value: "Scheduler-Location"},
		{Name: "Url", Value: "http://old.example"}, {Name: "Time-To-Live", Value: "1000"}}})
	for _, d := range []*ans104.DataItem{w.module, w.oldLoc} {
		f.put(d)
	}
	w.mined = f.mine()
	w.process = f.sign(user, "", ans104.Options{Anchor: []byte("00000000000000000000000000000001"), Tags: []ans104.Tag{
		{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Process"},
		{Name: "Module", Value: w.module.ID()}, {Name: "Scheduler", Value: ans104.Address(w.su.Owner())}, {Name: "Name", Value: "dup"}, {Name: "Name", Value: "dup"}}})
	w.newLoc = f.sign(w.su, "", ans104.Options{Tags: []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Type", Value: "Scheduler-Location"},
		{Name: "Url", Value: "http://new.example"}, {Name: "Time-To-Live", Value: "3600000"}}})
	cp := func(nonce, ts string) *ans104.DataItem {
		return f.sign(w.cu, "gz", ans104.Options{Tags: []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Type", Value: "Checkpoint"},
			{Name: "Process", Value: w.process.ID()}, {Name: "Nonce", Value: nonce}, {Name: "Timestamp", Value: ts}, {Name: "Content-Encoding", Value: "gzip"}}})
	}
	w.cp1, w.cp2 = cp("5", "1000"), cp("9", "2000")
	w.child = f.sign(user, "child", ans104.Options{Tags: []ans104.Tag{{Name: "Child", Value: "1"}}})
	w.bundle = f.sign(w.su, string(ans104.BuildBundle([]*ans104.DataItem{w.child})), ans104.Options{Tags: ans104.BundleTags})
	for _, d := range []*ans104.DataItem{w.process, w.newLoc, w.cp1, w.cp2, w.bundle} {
		f.put(d)
	}
	return w
}

// The GraphQL documents below are the ones AO software sends (gateway.md §4),
// with their comments, missing and trailing commas, directives and duplicate fields.
const (
	q1 = `query GetTransactions ($transactionIds: [ID!]!) {
  transactions(ids: $transactionIds) {
    edges { node { owner { address } tags { name value } block { id height timestamp } } }
  }
}`
	q2 = `query GetTransactions ($transactionIds: [ID!]!) {
  transactions(ids: $transactionIds, tags: [{ name: "Data-Protocol", values: ["ao"] }]) {
    edges { node { tags { name value } } }
  }
}`
	q3 = `query GetSchedulerLocation ($owner: String!) {
  transactions (
    owners: [$owner]
    tags: [
      { name: "Data-Protocol", values: ["ao"] },
      { name: "Type", values: ["Scheduler-Location"] }
    ]
    # Only need the most recent record
    sort: HEIGHT_DESC
    first: 1
  ) {
    edges { node { tags { name value } } }
  }
}`
	q4 = `query ($ids: [ID!]!) {
  transactions(ids: $ids) {
    pageInfo { hasNextPage }
    edges {
      cursor
      node {
        id anchor signature recipient
        block { timestamp }
        owner { address key }
        fee { winston ar }
        quantity { winston ar }
        data { size type }
        tags { name value }
        block { id timestamp height previous }
        parent { id }
      }
    }
  }
}`
	q5 = `query GetProcesses ($processIds: [ID!]!, $skipTags: Boolean!, $skipSignature: Boolean!, $skipAnchor: Boolean!) {
  transactions(ids: $processIds) {
    edges {
      node {
        id
        signature @skip(if: $skipSignature)
        anchor @skip(if: $skipAnchor)
        owner { address key }
        tags @skip(if: $skipTags) { name value }
        recipient
      }
    }
  }
}`
	q6 = `query GetAoProcessCheckpoints($owners: [String!]!, $processId: String!, $limit: Int!) {
  transactions(
    tags: [
      { name: "Process", values: [$processId] }
      { name: "Type", values: ["Checkpoint"] }
      { name: "Data-Protocol", values: ["ao"] }
    ],
    owners: $owners,
    first: $limit,
    sort: HEIGHT_DESC
  ) {
    edges { node { id owner { address } tags { name value } } }
  }
}`
	q7 = `query GetAoProcessCheckpoint($owner: String!, $processId: String!, $timestamp: String!, $nonce: String!) {
  transactions(
    tags: [
      { name: "Process", values: [$processId] }
      { name: "Nonce", values: [$nonce] }
      { name: "Timestamp", values: [$timestamp] }
      { name: "Type", values: ["Checkpoint"] }
      { name: "Data-Protocol", values: ["ao"] }
    ],
    owners: [$owner],
    first: 1
  ) {
    edges { node { id owner { address } tags { name value } } }
  }
}`
	q8 = `query GetBlocks($min: Int!, $limit: Int!) {
  blocks(height: { min: $min }, first: $limit, sort: HEIGHT_ASC) {
    pageInfo { hasNextPage }
    edges { node { timestamp height } }
  }
}`
	q10 = `query GetSchedulerLocations ($cursor: String) {
  transactions(
    tags: [
      { name: "Type", values: ["Scheduler-Location"] }
      { name: "Data-Protocol", values: ["ao"] }
    ]
    first: 100
    after: $cursor
  ) {
    edges { node { id owner { address } tags { name value } block { id height timestamp } } cursor }
    pageInfo { hasNextPage }
  }
}`
)

func TestGraphQLQueriesAOSends(t *testing.T) {
	f := newFixture(t, Config{})
	w := f.world()
	suAddr := ans104.Address(w.su.Owner())

	t.Run("Q1 aoconnect module check", func(t *testing.T) {
		e := edges(f.gql(q1, map[string]any{"transactionIds": []string{w.module.ID()}}), "transactions")
		if len(e) != 1 || fmt.Sprint(tagsOf(path(e[0], "node"))) != fmt.Sprint(w.module.Tags) {
			t.Fatalf("edges %v", e)
		}
		if path(e[0], "node", "owner", "address") != w.module.OwnerAddress() || path(e[0], "node", "block", "height") != float64(w.mined.Height) ||
			path(e[0], "node", "block", "timestamp") != float64(w.mined.Timestamp) || path(e[0], "node", "block", "id") != w.mined.ID {
			t.Fatalf("node %v, block %+v", e[0], w.mined)
		}
	})
	t.Run("Q2 scheduler-utils process scheduler", func(t *testing.T) {
		e := edges(f.gql(q2, map[string]any{"transactionIds": []string{w.process.ID()}}), "transactions")
		tags := tagsOf(path(e[0], "node"))
		if len(e) != 1 || len(tags) != 7 || tags[4] != (ans104.Tag{Name: "Scheduler", Value: suAddr}) || tags[6].Name != "Name" {
			t.Fatalf("tags (order and duplicates kept) %v", tags)
		}
		if e := edges(f.gql(q2, map[string]any{"transactionIds": []string{w.child.ID()}}), "transactions"); len(e) != 0 {
			t.Fatal("tag filter ignored")
		}
	})
	t.Run("Q3 newest scheduler location, pending first", func(t *testing.T) {
		e := edges(f.gql(q3, map[string]any{"owner": suAddr}), "transactions")
		if len(e) != 1 || tagsOf(path(e[0], "node"))[2].Value != "http://new.example" {
			t.Fatalf("edges %v", e)
		}
	})
	t.Run("Q4 full record with merged block", func(t *testing.T) {
		f.mine()
		data := f.gql(q4, map[string]any{"ids": []string{w.process.ID()}})
		n := path(edges(data, "transactions")[0], "node")
		want := map[string]any{
			"id": w.process.ID(), "anchor": "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDE", "signature": ans104.Base64URL(w.process.Signature),
			"recipient": "", "owner": map[string]any{"address": w.process.OwnerAddress(), "key": ans104.Base64URL(w.process.Owner)},
			"fee": map[string]any{"winston": "0", "ar": "0.000000000000"}, "quantity": map[string]any{"winston": "0", "ar": "0.000000000000"},
			"data": map[string]any{"size": "0", "type": nil}, "parent": nil,
		}
		for k, v := range want {
			if fmt.Sprint(path(n, k)) != fmt.Sprint(v) {
				t.Errorf("%s = %v, want %v", k, path(n, k), v)
			}
		}
		blk := path(n, "block").(map[string]any)
		if len(blk) != 4 || blk["height"] == nil || blk["previous"] == nil {
			t.Errorf("block selections not merged: %v", blk)
		}
		if path(data, "transactions", "pageInfo", "hasNextPage") != false || path(edges(data, "transactions")[0], "cursor") == "" {
			t.Error("pageInfo/cursor")
		}
		if ct := path(edges(f.gql(q4, map[string]any{"ids": []string{w.module.ID()}}), "transactions")[0], "node", "data"); fmt.Sprint(ct) != "map[size:4 type:application/wasm]" {
			t.Errorf("module data %v", ct)
		}
	})
	t.Run("Q5 reference CU with skip", func(t *testing.T) {
		for _, skip := range []bool{false, true} {
			e := edges(f.gql(q5, map[string]any{"processIds": []string{w.process.ID()}, "skipTags": skip, "skipSignature": skip, "skipAnchor": skip}), "transactions")
			n := path(e[0], "node").(map[string]any)
			_, hasTags := n["tags"]
			_, hasSig := n["signature"]
			if hasTags == skip || hasSig == skip || n["recipient"] != "" || n["id"] != w.process.ID() {
				t.Fatalf("skip=%v: %v", skip, n)
			}
		}
	})
	t.Run("Q6 checkpoints by owners", func(t *testing.T) {
		e := edges(f.gql(q6, map[string]any{"owners": []string{ans104.Address(w.cu.Owner()), "someone-else"}, "processId": w.process.ID(), "limit": 50}), "transactions")
		if len(e) != 2 || path(e[0], "node", "id") != w.cp2.ID() || path(e[1], "node", "id") != w.cp1.ID() {
			t.Fatalf("edges %v", e)
		}
		if e := edges(f.gql(q6, map[string]any{"owners": []string{suAddr}, "processId": w.process.ID(), "limit": 50}), "transactions"); len(e) != 0 {
			t.Fatal("owner filter ignored")
		}
	})
	t.Run("Q7 checkpoint exists", func(t *testing.T) {
		vars := map[string]any{"owner": ans104.Address(w.cu.Owner()), "processId": w.process.ID(), "timestamp": "1000", "nonce": "5"}
		if e := edges(f.gql(q7, vars), "transactions"); len(e) != 1 || path(e[0], "node", "id") != w.cp1.ID() {
			t.Fatalf("edges %v", e)
		}
		vars["nonce"] = "9"
		if e := edges(f.gql(q7, vars), "transactions"); len(e) != 0 {
			t.Fatal("AND of tag filters")
		}
	})
	t.Run("Q8 blocks ascending", func(t *testing.T) {
		data := f.gql(q8, map[string]any{"min": 1, "limit": 1})
		e := edges(data, "blocks")
		if len(e) != 1 || path(e[0], "node", "height") != float64(1) || path(data, "blocks", "pageInfo", "hasNextPage") != true {
			t.Fatalf("blocks %v", data)
		}
	})
	t.Run("Q9 reference SU inline literal", func(t *testing.T) {
		e := edges(f.gql(`query { transactions(ids: ["`+w.process.ID()+`"]) { edges { node { id signature anchor owner { address key } tags { name value } recipient } } } }`, map[string]any{}), "transactions")
		if len(e) != 1 || path(e[0], "node", "signature") != ans104.Base64URL(w.process.Signature) {
			t.Fatalf("edges %v", e)
		}
	})
	t.Run("Q10 MU scheduler locations", func(t *testing.T) {
		data := f.gql(q10, map[string]any{"cursor": nil})
		e := edges(data, "transactions")
		if len(e) != 2 || path(e[0], "node", "id") != w.newLoc.ID() || path(e[1], "node", "block", "height") != float64(w.mined.Height) {
			t.Fatalf("edges %v", e)
		}
	})
	t.Run("Q11 weavedrive inline owners and trailing comma", func(t *testing.T) {
		q := fmt.Sprintf(`query { transactions(owners: ["%s"], block: {min: 0, max: %d}, tags: [{ name: "Type", values: ["Checkpoint"] }, { name: "Process", values: ["%s"] }
			{ name: "Data-Protocol", values: ["ao"] },]) { edges { node { tags { name value } } } } }`, ans104.Address(w.cu.Owner()), f.store.Current().Height, w.process.ID())
		if e := edges(f.gql(q, nil), "transactions"); len(e) != 2 {
			t.Fatalf("edges %v", e)
		}
		q = strings.Replace(q, fmt.Sprintf("max: %d", f.store.Current().Height), "max: 0", 1)
		if e := edges(f.gql(q, nil), "transactions"); len(e) != 0 {
			t.Fatal("block range ignored")
		}
	})
	t.Run("bundledIn", func(t *testing.T) {
		data := f.gql(`query($b: [ID!]) { transactions(bundledIn: $b) { edges { node { id bundledIn { id } parent { id } } } } }`, map[string]any{"b": []string{w.bundle.ID()}})
		e := edges(data, "transactions")
		if len(e) != 1 || path(e[0], "node", "id") != w.child.ID() || path(e[0], "node", "bundledIn", "id") != w.bundle.ID() || path(e[0], "node", "parent", "id") != w.bundle.ID() {
			t.Fatalf("edges %v", e)
		}
	})
	t.Run("transaction, recipients, owner key, NEQ, aliases and fragments", func(t *testing.T) {
		data := f.gql(`query { tx: transaction(id: "`+w.newLoc.ID()+`") { ...F } nope: transaction(id: "`+strings.Repeat("A", 43)+`") { id } }
			fragment F on Transaction { id owner { address } }`, nil)
		if path(data, "tx", "id") != w.newLoc.ID() || path(data, "nope") != nil {
			t.Fatalf("%v", data)
		}
		e := edges(f.gql(`query($k: String!) { transactions(owners: [$k], tags: [{name: "Url", values: ["http://old.example"], op: NEQ}]) { edges { node { id } } } }`,
			map[string]any{"k": ans104.Base64URL(w.su.Owner())}), "transactions")
		if len(e) != 1 || path(e[0], "node", "id") != w.newLoc.ID() {
			t.Fatalf("owner key + NEQ: %v", e)
		}
	})
}

func TestPagination(t *testing.T) {
	f := newFixture(t, Config{})
	s := newSigner()
	var ids []string
	for i := range 25 {
		d := f.sign(s, fmt.Sprint(i), ans104.Options{Tags: []ans104.Tag{{Name: "Type", Value: "Message"}, {Name: "N", Value: fmt.Sprint(i % 3)}}})
		f.put(d)
		ids = append(ids, d.ID())
		if i%7 == 0 {
			f.mine()
		}
	}
	const q = `query($after: String, $sort: SortOrder, $n: [String!]!) { transactions(tags: [{name: "Type", values: ["Message"]}, {name: "N", values: $n}], first: 10, after: $after, sort: $sort) {
		pageInfo { hasNextPage } edges { cursor node { id } } } }`
	for _, tc := range []struct {
		sort string
		n    []string
		want []string
	}{
		{"HEIGHT_DESC", []string{"0", "1", "2"}, reverse(ids)},
		{"HEIGHT_ASC", []string{"0", "1", "2"}, ids},
		{"HEIGHT_DESC", []string{"1", "2"}, reverse(filter(ids, func(i int) bool { return i%3 != 0 }))},
	} {
		var got []string
		var after any
		for page := 0; ; page++ {
			data := f.gql(q, map[string]any{"after": after, "sort": tc.sort, "n": tc.n})
			for _, e := range edges(data, "transactions") {
				got = append(got, path(e, "node", "id").(string))
				after = path(e, "cursor")
			}
			if path(data, "transactions", "pageInfo", "hasNextPage") != true {
				break
			}
			f.mine() // cutting blocks between pages must not disturb cursors
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s %v: got %d ids, want %d in order", tc.sort, tc.n, len(got), len(tc.want))
		}
	}
	// first: above 100 is capped; 0 gives nothing.
	data := f.gql(`{ transactions(first: 1000) { edges { node { id } } } }`, nil)
	if len(edges(data, "transactions")) != 25 {
		t.Errorf("first 1000: %d", len(edges(data, "transactions")))
	}
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func filter(s []string, keep func(int) bool) []string {
	var out []string
	for i, v := range s {
		if keep(i) {
			out = append(out, v)
		}
	}
	return out
}

func TestRoutes(t *testing.T) {
	f := newFixture(t, Config{MaxItemSize: 1 << 20})
	w := f.world()
	get := func(method, p string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, f.srv.URL+p, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	// Data routes.
	resp, body := get("GET", "/"+w.module.ID())
	if resp.StatusCode != 200 || string(body) != "\x00asm" || resp.Header.Get("Content-Type") != "application/wasm" || resp.Header.Get("Type") != "Module" {
		t.Fatalf("GET /id: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = get("GET", "/"+w.process.ID())
	if resp.Header.Get("Type") != "Process" || resp.Header.Get("Scheduler") != ans104.Address(w.su.Owner()) || len(resp.Header.Values("Name")) != 2 {
		t.Fatalf("process tags as headers: %v", resp.Header)
	}
	resp, body = get("GET", "/raw/"+w.child.ID())
	if resp.StatusCode != 200 || string(body) != "child" {
		t.Fatalf("raw bundled child: %d %q", resp.StatusCode, body)
	}
	resp, body = get("HEAD", "/"+w.module.ID(), "Accept-Encoding", "identity")
	if resp.StatusCode != 200 || resp.ContentLength != 4 || len(body) != 0 {
		t.Fatalf("HEAD: %d %d", resp.StatusCode, resp.ContentLength)
	}
	resp, body = get("GET", "/raw/"+w.module.ID(), "Range", "bytes=1-2")
	if resp.StatusCode != 206 || string(body) != "as" {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	resp, _ = get("HEAD", "/"+ans104.Address(w.su.Owner()))
	if resp.StatusCode != 404 {
		t.Fatalf("HEAD wallet address: %d (the MU takes 2xx to mean 'not a wallet')", resp.StatusCode)
	}
	for _, p := range []string{"/raw/" + strings.Repeat("A", 43), "/" + strings.Repeat("A", 43), "/tx/" + strings.Repeat("A", 43), "/nonsense", "/block/height/99"} {
		if resp, body := get("GET", p); resp.StatusCode != 404 || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}

	// /info has all nine fields with the right types.
	_, body = get("GET", "/info")
	var info map[string]any
	json.Unmarshal(body, &info)
	for _, k := range []string{"network", "current"} {
		if _, ok := info[k].(string); !ok {
			t.Errorf("/info %s not a string: %v", k, info)
		}
	}
	for _, k := range []string{"version", "release", "height", "blocks", "peers", "queue_length", "node_state_latency"} {
		if _, ok := info[k].(float64); !ok {
			t.Errorf("/info %s not a number: %v", k, info)
		}
	}
	if info["height"] != float64(f.store.Current().Height) || info["current"] != f.store.Current().ID {
		t.Errorf("/info %v", info)
	}

	// /tx/{id} and status.
	resp, body = get("GET", "/tx/"+w.process.ID()+"/status")
	if resp.StatusCode != 202 {
		t.Fatalf("pending status: %d %s", resp.StatusCode, body)
	}
	f.mine()
	_, body = get("GET", "/tx/"+w.process.ID()+"/status")
	var st map[string]any
	json.Unmarshal(body, &st)
	if st["block_height"] != float64(f.store.Current().Height) || st["number_of_confirmations"] != float64(1) || st["block_indep_hash"] != f.store.Current().ID {
		t.Fatalf("status %s", body)
	}
	_, body = get("GET", "/tx/"+w.process.ID())
	var tx map[string]any
	json.Unmarshal(body, &tx)
	if tx["id"] != w.process.ID() || path(tx, "tags", 0, "name") != ans104.Base64URL([]byte("Data-Protocol")) || tx["data_size"] != "0" {
		t.Fatalf("tx %s", body)
	}
	_, body = get("GET", "/block/height/1")
	if !strings.Contains(string(body), `"indep_hash":"`+w.mined.ID) {
		t.Fatalf("block %s", body)
	}
	if _, body = get("GET", "/price/1000"); string(body) != "65595508" {
		t.Errorf("price %s", body)
	}

	// Uploads: idempotent, bad input is a 4xx JSON error, nothing half-stored.
	if code, out := f.post("/tx/arweave", w.module.Bytes()); code != 200 || out["id"] != w.module.ID() {
		t.Fatalf("re-upload: %d %v", code, out)
	}
	bad := bytes.Clone(w.module.Bytes())
	bad[len(bad)-1] ^= 1
	badChild := bytes.Clone(w.child.Bytes())
	badChild[len(badChild)-1] ^= 1
	s := newSigner()
	badBundle := f.sign(s, string(ans104.BuildBundle([]*ans104.DataItem{mustParse(t, badChild)})), ans104.Options{Tags: ans104.BundleTags})
	for name, tc := range map[string]struct {
		body []byte
		code int
	}{
		"garbage":           {[]byte("hello"), 400},
		"bad signature":     {bad, 400},
		"bad bundled child": {badBundle.Bytes(), 400},
		"L1 json":           {[]byte(`{"format":2}`), 400},
		"too large":         {make([]byte, 2<<20), 413},
		"empty":             {nil, 400},
	} {
		if code, out := f.post("/tx/arweave", tc.body); code != tc.code || out["error"] == nil {
			t.Errorf("%s: %d %v", name, code, out)
		}
	}
	if _, err := f.store.Get(context.Background(), badBundle.ID()); err != ErrNotFound {
		t.Error("a bundle with an invalid item was stored")
	}
	// A raw bundle (not wrapped in an item).
	raw := ans104.BuildBundle([]*ans104.DataItem{f.sign(s, "a", ans104.Options{}), f.sign(s, "b", ans104.Options{})})
	if code, out := f.post("/tx", raw); code != 200 || len(out["ids"].([]any)) != 2 {
		t.Fatalf("raw bundle: %d %v", code, out)
	}

	// GraphQL errors.
	for name, body := range map[string]string{
		"not json":      "{",
		"syntax":        `{"query":"{ transactions( }"}`,
		"unknown field": `{"query":"{ transactions { edges { node { nope } } } }"}`,
		"bad cursor":    `{"query":"{ transactions(after: \"zz\") { edges { cursor } } }"}`,
		"no query":      `{}`,
	} {
		resp, err := http.Post(f.srv.URL+"/graphql", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 5 || (!strings.Contains(string(b), `"error`)) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		}
	}
	// GET /graphql?query=
	resp, body = get("GET", "/graphql?query="+strings.ReplaceAll(`{transactions(first:1){edges{node{id}}}}`, " ", "%20"))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"edges"`) {
		t.Errorf("GET graphql: %d %s", resp.StatusCode, body)
	}
}

func mustParse(t *testing.T, b []byte) *ans104.DataItem {
	d, err := ans104.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	sg := newSigner()
	var ids []string
	for i := range 50 {
		d, _ := ans104.Sign(sg, []byte(fmt.Sprint(i)), ans104.Options{Tags: []ans104.Tag{{Name: "I", Value: fmt.Sprint(i)}}})
		if _, err := s.Put(ctx, d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID())
		if i == 20 {
			s.Mine(ctx)
		}
	}
	cur := s.Current()
	s.Close()
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Current() != cur {
		t.Fatalf("current block %+v after restart, was %+v", s.Current(), cur)
	}
	for i, id := range ids {
		raw, err := s.Raw(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d := mustParse(t, raw); string(d.Data) != fmt.Sprint(i) || d.Verify() != nil {
			t.Fatalf("item %d changed", i)
		}
	}
	if b, ok, _ := s.Mine(ctx); !ok || b.Height != cur.Height+1 || b.Items != 29 {
		t.Fatalf("pending items after restart: %+v", b)
	}
}

func TestUpstreamAndBundler(t *testing.T) {
	up := newFixture(t, Config{})
	s := newSigner()
	remoteItem := up.sign(s, "remote data", ans104.Options{Tags: []ans104.Tag{{Name: "Content-Type", Value: "text/plain"}, {Name: "Type", Value: "Module"}}})
	up.put(remoteItem)

	// A bundler that fails twice, then forwards to the upstream gateway.
	var fails int
	bundler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails < 2 {
			fails++
			http.Error(w, "busy", 503)
			return
		}
		r2, _ := http.NewRequest(r.Method, up.srv.URL+r.URL.Path, r.Body)
		resp, err := http.DefaultClient.Do(r2)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
	}))
	defer bundler.Close()

	down := newFixture(t, Config{Upstream: up.srv.URL, Bundler: bundler.URL})
	resp, err := http.Get(down.srv.URL + "/raw/" + remoteItem.ID())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "remote data" {
		t.Fatalf("read-through: %d %q", resp.StatusCode, body)
	}
	e := edges(down.gql(q1, map[string]any{"transactionIds": []string{remoteItem.ID()}}), "transactions")
	if len(e) != 1 || tagsOf(path(e[0], "node"))[1].Value != "Module" {
		t.Fatalf("graphql read-through: %v", e)
	}
	up.srv.Close() // cached data outlives the upstream
	resp, err = http.Get(down.srv.URL + "/raw/" + remoteItem.ID())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("cached read: %d", resp.StatusCode)
	}
	up.srv = httptest.NewServer(up.gw.Handler()) // back, at a new address
	defer up.srv.Close()

	local := down.sign(s, "to the bundler", ans104.Options{})
	down.put(local)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Delivered, and the queue entry removed (which happens just after the
		// upstream has answered, so it is waited for too).
		_, err := up.store.Get(context.Background(), local.ID())
		if n, _ := down.store.ForwardPending(context.Background()); err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			n, _ := down.store.ForwardPending(context.Background())
			t.Fatalf("upload never reached the bundler (%d pending, %d failures)", n, fails)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, _ := down.store.ForwardPending(context.Background()); n != 0 || fails != 2 {
		t.Fatalf("%d still queued, %d failures", n, fails)
	}
}
