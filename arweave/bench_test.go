package arweave

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/aonode/aonode/ans104"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// items signs n small AO messages spread over 100 processes.
func benchItems(b *testing.B, n int) []*ans104.DataItem {
	sg := newSigner()
	out := make([]*ans104.DataItem, n)
	for i := range out {
		d, err := ans104.Sign(sg, []byte(fmt.Sprint(i)), ans104.Options{Target: make([]byte, 32), Tags: []ans104.Tag{
			{Name: "Data-Protocol", Value: "ao"}, {Name: "Type", Value: "Message"}, {Name: "Process", Value: fmt.Sprint(i % 100)}, {Name: "N", Value: fmt.Sprint(i)}}})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// BenchmarkPut measures items stored per second with 16 concurrent writers
// (group commit, synchronous=FULL).
//
//	go test ./arweave -run '^$' -bench Put -benchtime 20000x
func BenchmarkPut(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	items := benchItems(b, b.N)
	b.ResetTimer()
	var wg sync.WaitGroup
	next := make(chan *ans104.DataItem)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range next {
				if _, err := s.Put(context.Background(), d); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for _, d := range items {
		next <- d
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

var (
	bigOnce  sync.Once
	bigStore *Store
)

// BenchmarkGraphQL runs AO's common queries against a store of 100,000 items.
//
//	go test ./arweave -run '^$' -bench GraphQL
func BenchmarkGraphQL(b *testing.B) {
	bigOnce.Do(func() {
		s, err := Open(context.Background(), b.TempDir()+"/big")
		if err != nil {
			b.Fatal(err)
		}
		items := benchItems(b, 100_000)
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(items); i += 16 {
					s.Put(context.Background(), items[i])
					if i%10000 == 0 {
						s.Mine(context.Background())
					}
				}
			}()
		}
		wg.Wait()
		s.Mine(context.Background())
		bigStore = s
	})
	g := newGraphQL(bigStore)
	// Variables arrive as decoded JSON.
	decode := func(v map[string]any) map[string]any {
		b, _ := json.Marshal(v)
		var out map[string]any
		json.Unmarshal(b, &out)
		return out
	}
	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
	}{
		{"by-id", q4, map[string]any{"ids": []string{"x"}}},
		{"process-messages", `query($p: String!) { transactions(tags: [{name: "Process", values: [$p]}, {name: "Data-Protocol", values: ["ao"]}], first: 100) { edges { cursor node { id tags { name value } } } } }`, map[string]any{"p": "42"}},
		{"latest-100", `{ transactions(first: 100) { edges { node { id owner { address } tags { name value } block { height } } } } }`, nil},
		{"rare-tag", `query($n: String!) { transactions(tags: [{name: "N", values: [$n]}]) { edges { node { id } } } }`, map[string]any{"n": "77777"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r, _ := g.exec(context.Background(), gqlRequest{Query: tc.query, Variables: decode(tc.vars)}); len(r.Errors) > 0 {
						b.Error(r.Errors)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}
