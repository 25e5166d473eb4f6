package placement

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPlacement is the cost placement adds to each message the MU pulls
// (or the router proxies): Choose alone, Candidates (the failover order), and
// Do around a no-op request (choose, then record who served), over 3 and 16
// equal-priced CUs.
func BenchmarkPlacement(b *testing.B) {
	for _, n := range []int{3, 16} {
		// Answering CUs: the background probes find them healthy.
		var urls []string
		for range n {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"address":"x"}`))
			}))
			defer s.Close()
			urls = append(urls, s.URL)
		}
		p, err := New(Config{URLs: urls})
		if err != nil {
			b.Fatal(err)
		}
		p.Refresh(context.Background())
		if p.Healthy() != n {
			b.Fatalf("%d healthy CUs of %d", p.Healthy(), n)
		}
		ps := pids(1024)
		b.Run(fmt.Sprintf("choose/cus=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				p.Choose(ps[i&1023])
			}
		})
		b.Run(fmt.Sprintf("candidates/cus=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				p.Candidates(ps[i&1023])
			}
		})
		ctx := context.Background()
		noop := func(context.Context, string) (Outcome, error) { return Answered, nil }
		b.Run(fmt.Sprintf("do/cus=%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				p.Do(ctx, ps[i&1023], noop)
			}
		})
	}
}
