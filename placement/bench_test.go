package placement

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPlacement is the cost placement adds to each message the MU pulls
// (or the router proxies): Choose alone, Candidates (the failover order), and
// Do around a no-op request (choose, then record who served), over 3 and 16
// equal-priced CUs.
func BenchmarkPlacement(b *testing.B) {
	for _, n := range []int{3, 16} {
		var urls []string
		for i := range n {
			urls = append(urls, fmt.Sprintf("http://cu-%d:4004", i))
		}
		p, err := New(Config{URLs: urls})
		if err != nil {
			b.Fatal(err)
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
