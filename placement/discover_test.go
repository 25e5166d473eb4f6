package placement

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/arweave"
	"github.com/aonode/aonode/wallet"
)

// priceRecord signs a Compute-Price record as a CU publishes it.
func priceRecord(t *testing.T, w *wallet.Wallet, url, price string, ts time.Time, ttl time.Duration) *ans104.DataItem {
	t.Helper()
	tags := []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Compute-Price"},
		{Name: "Url", Value: url}, {Name: "Price-Message", Value: price}, {Name: "Price-Gigafuel", Value: "0"},
		{Name: "Price-Verification", Value: "0"}, {Name: "Price-Dry-Run", Value: "0"},
		{Name: "Time-To-Live", Value: strconv.FormatInt(ttl.Milliseconds(), 10)},
		{Name: "Timestamp", Value: strconv.FormatInt(ts.UnixMilli(), 10)}}
	d, err := ans104.Sign(w, []byte("1984"), ans104.Options{Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func genWallet(t *testing.T) *wallet.Wallet {
	w, err := wallet.Generate(wallet.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDiscovery finds CUs through a real gateway's GraphQL: the newest record
// of each owner, within its Time-To-Live, whose URL answers with the owner's
// address.
func TestDiscovery(t *testing.T) {
	ctx := context.Background()
	st, err := arweave.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gw := httptest.NewServer(arweave.NewGateway(st, arweave.Config{}).Handler())
	t.Cleanup(gw.Close)

	w1, w2, w3, w4 := genWallet(t), genWallet(t), genWallet(t), genWallet(t)
	cu1 := newFakeCU(t, w1.Address(), "3")
	cu2 := newFakeCU(t, w2.Address(), "1")
	liar := newFakeCU(t, "someone-else", "0") // a record by w3 naming a CU that is not w3's
	cu4 := newFakeCU(t, w4.Address(), "0")
	now := time.Now()
	put := func(d *ans104.DataItem) {
		if _, err := st.Put(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	put(priceRecord(t, w1, cu1.srv.URL, "3", now, time.Hour))
	// w2 moved: the newer record wins, in an earlier block and after mining.
	put(priceRecord(t, w2, "http://127.0.0.1:1", "5", now.Add(-time.Minute), time.Hour))
	if _, _, err := st.Mine(ctx); err != nil {
		t.Fatal(err)
	}
	put(priceRecord(t, w2, cu2.srv.URL, "1", now, time.Hour))
	put(priceRecord(t, w3, liar.srv.URL, "0", now, time.Hour))
	put(priceRecord(t, w4, cu4.srv.URL, "0", now.Add(-2*time.Hour), time.Hour)) // expired
	if _, _, err := st.Mine(ctx); err != nil {
		t.Fatal(err)
	}

	explicit := newFakeCU(t, "flagged", "2")
	p, err := New(Config{URLs: []string{explicit.srv.URL}, GatewayURL: gw.URL})
	if err != nil {
		t.Fatal(err)
	}
	p.Refresh(ctx)
	tb := p.Table()
	rows := map[string]CU{}
	for _, c := range tb.CUs {
		rows[c.URL] = c
	}
	if len(rows) != 4 {
		t.Fatalf("table %+v", tb)
	}
	for _, c := range []struct {
		url, source, addr string
		healthy           bool
	}{
		{cu1.srv.URL, "gateway", w1.Address(), true},
		{cu2.srv.URL, "gateway", w2.Address(), true},
		{liar.srv.URL, "gateway", w3.Address(), false},
		{explicit.srv.URL, "flag", "flagged", true},
	} {
		r, ok := rows[c.url]
		if !ok || r.Source != c.source || r.Healthy != c.healthy || r.Address != c.addr {
			t.Errorf("%s: row %+v, want source %s healthy %v address %s", c.url, r, c.source, c.healthy, c.addr)
		}
	}
	if u, _ := p.Choose("any"); u != cu2.srv.URL {
		t.Fatalf("chose %s, want the cheapest discovered CU %s", u, cu2.srv.URL)
	}
	// w2 republishes at a higher price with a short life; once it expires
	// the CU leaves the table, the explicit one stays.
	put(priceRecord(t, w2, cu2.srv.URL, "4", now.Add(-time.Second), time.Millisecond))
	p.Refresh(ctx)
	for _, c := range p.Table().CUs {
		if c.URL == cu2.srv.URL {
			t.Fatalf("expired record kept %+v", c)
		}
	}
	if u, _ := p.Choose("any"); u != explicit.srv.URL {
		t.Fatalf("chose %s, want %s (2 beats 3)", u, explicit.srv.URL)
	}
}
