package su

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
)

// TestPageTimestampRuns: many slots share a millisecond at real rates. Paging by
// timestamp cursors (from is exclusive) must still visit every slot exactly
// once, whatever the limit, because a page never ends inside a run.
func TestPageTimestampRuns(t *testing.T) {
	ctx := context.Background()
	st, _ := backends[0].open(t)
	var now atomic.Int64
	now.Store(5_000)
	s := newTestScheduler(t, st, func(c *SchedulerConfig) { c.Now = now.Load })
	proc := processItem(t, suWallet().Address())
	s.Submit(ctx, proc.Bytes())
	pid := proc.ID()
	// Runs of 1, 7, 3, 12 and 1 slots.
	var all []string
	for run, n := range []int{1, 7, 3, 12, 1} {
		now.Store(int64(6_000 + run))
		for range n {
			m := messageItem(t, pid)
			if _, err := s.Submit(ctx, m.Bytes()); err != nil {
				t.Fatal(err)
			}
			all = append(all, m.ID())
		}
	}
	p := mustProcess(t, st, pid)
	// Also with pages cut by size (a message slot is about 1.5 KB): the store
	// stops reading there, and paging still visits every slot once.
	for _, maxBytes := range []int{maxPageBytes, 4000} {
		old := maxPageBytes
		maxPageBytes = maxBytes
		t.Cleanup(func() { maxPageBytes = old })
		page, err := Reader{st}.Page(context.Background(), p, PageParams{Limit: 30})
		if err != nil {
			t.Fatal(err)
		}
		if cut := len(page.Edges) < len(all); cut != page.PageInfo.HasNextPage || cut != (maxBytes == 4000) {
			t.Fatalf("cap %d: first page of %d edges, has_next_page %v", maxBytes, len(page.Edges), page.PageInfo.HasNextPage)
		}
		pageThrough(t, st, p, all)
	}
}

func pageThrough(t *testing.T, st Store, p *ProcessRecord, all []string) {
	ctx, pid := context.Background(), p.ID
	for limit := 1; limit <= 30; limit++ {
		var got []string
		var from *int64
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			page, err := Reader{st}.Page(ctx, p, PageParams{From: from, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Edges {
				if e.Node.Message.ID != pid {
					got = append(got, e.Node.Message.ID)
				}
				c, _ := strconv.ParseInt(e.Cursor, 10, 64)
				from = &c
			}
			if !page.PageInfo.HasNextPage {
				break
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(all) {
			t.Fatalf("limit %d: visited %d slots, want %d in order", limit, len(got), len(all))
		}
	}
}

func TestParsePageParams(t *testing.T) {
	for _, c := range []struct {
		q    string
		want string
		err  bool
	}{
		{"", "from=<nil> to=<nil> fn=<nil> tn=<nil> limit=100 anchor=false", false},
		{"from=5&to=9&limit=3&show-anchor", "from=5 to=9 fn=<nil> tn=<nil> limit=3 anchor=true", false},
		{"from-nonce=-1&to-nonce=4", "from=<nil> to=<nil> fn=-1 tn=4 limit=100 anchor=false", false},
		{"limit=99999999", "from=<nil> to=<nil> fn=<nil> tn=<nil> limit=10000 anchor=false", false},
		{"limit=-1", "", true},
		{"limit=", "", true},
		{"from=1e3", "", true},
		{"to=99999999999999999999", "", true},
		{"from-nonce=x", "", true},
	} {
		q, _ := url.ParseQuery(c.q)
		p, err := ParsePageParams(q)
		if (err != nil) != c.err {
			t.Errorf("%q: error %v", c.q, err)
			continue
		}
		if !c.err && describe(p) != c.want {
			t.Errorf("%q: %s, want %s", c.q, describe(p), c.want)
		}
	}
}

func describe(p PageParams) string {
	s := func(v *int64) string {
		if v == nil {
			return "<nil>"
		}
		return strconv.FormatInt(*v, 10)
	}
	return fmt.Sprintf("from=%s to=%s fn=%s tn=%s limit=%d anchor=%v", s(p.From), s(p.To), s(p.FromNonce), s(p.ToNonce), p.Limit, p.ShowAnchor)
}

func TestLossy(t *testing.T) {
	// Expected values from Rust's String::from_utf8_lossy.
	for _, c := range []struct{ in, want string }{
		{"hello", "hello"},
		{"\xff\xfe", "\ufffd\ufffd"},
		{"a\xe2\x82b", "a\ufffdb"},             // truncated 3-byte sequence: one replacement
		{"\xf0\x9f\x98", "\ufffd"},             // truncated 4-byte sequence
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate: each byte
		{"\xc0\xaf", "\ufffd\ufffd"},           // overlong
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"ü\x80", "ü\ufffd"},
	} {
		if got := Lossy([]byte(c.in)); got != c.want {
			t.Errorf("Lossy(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
