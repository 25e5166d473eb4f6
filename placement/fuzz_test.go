package placement

import (
	"testing"
	"time"
)

// FuzzParseInfo feeds a CU's GET / answer: any bytes parse or fail, and what
// parses has normalized prices that compare as numbers.
func FuzzParseInfo(f *testing.F) {
	f.Add([]byte(`{"address":"a","timestamp":1,"pricing":true,"prices":{"token":"T","message":"12","gigafuel":"3","verification":"4","dryRun":"5"}}`))
	f.Add([]byte(`{"address":"a","timestamp":1700000000000}`))
	f.Add([]byte(`{"pricing":true,"prices":null}`))
	f.Add([]byte(`{"pricing":true,"prices":{"message":"000"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseInfo(b)
		if err != nil {
			return
		}
		for _, v := range []string{in.Prices.Message, in.Prices.Gigafuel, in.Prices.Verification, in.Prices.DryRun} {
			if v == "" || len(v) > maxPriceDigits || (len(v) > 1 && v[0] == '0') {
				t.Fatalf("price %q not normalized", v)
			}
		}
		if in.Prices.messagePrice().Sign() < 0 {
			t.Fatal("negative price")
		}
	})
}

// FuzzRecordsPage feeds a gateway's GraphQL answer of price records.
func FuzzRecordsPage(f *testing.F) {
	f.Add([]byte(`{"data":{"transactions":{"pageInfo":{"hasNextPage":true},"edges":[{"cursor":"c1","node":{"id":"x","owner":{"address":"O"},"tags":[{"name":"Type","value":"Compute-Price"},{"name":"Url","value":"http://a:1"},{"name":"Price-Message","value":"3"},{"name":"Time-To-Live","value":"1000"}],"block":{"height":3,"timestamp":1700000000}}}]}}}`))
	f.Add([]byte(`{"errors":[{"message":"bad"}]}`))
	f.Add([]byte(`{"data":{"transactions":{"edges":[{"node":{"owner":{"address":"O"},"tags":[{"name":"Type","value":"Compute-Price"},{"name":"Url","value":"https://b/"}],"block":null}}]}}}`))
	now := time.UnixMilli(1_700_000_000_000)
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, next, err := parseRecordsPage(b, now)
		if err != nil {
			if len(recs) > 0 || next != "" {
				t.Fatal("an error with results")
			}
			return
		}
		for _, r := range newestRecords(recs) {
			if r.URL == "" || r.Owner == "" || r.TTL < 0 {
				t.Fatalf("bad record %+v", r)
			}
			if _, err := normalizeURL(r.URL); err != nil {
				t.Fatalf("record URL %q: %v", r.URL, err)
			}
		}
	})
}
