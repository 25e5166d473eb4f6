package placement

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Prices are a CU's prices as the market shapes them (market-design.md):
// non-negative decimal integers in the smallest unit of Token, the ledger
// process ("" when the CU is free). An absent price is "0".
type Prices struct {
	Token        string `json:"token"`
	Message      string `json:"message"`
	Gigafuel     string `json:"gigafuel"`
	Verification string `json:"verification"`
	DryRun       string `json:"dryRun"`
}

// Info is what a CU says about itself in GET /: its wallet address and,
// when it prices its work, its prices. An older CU (or a reference CU) says
// only its address and timestamp, which reads as free.
type Info struct {
	Address   string `json:"address"`
	Timestamp int64  `json:"timestamp"`
	Pricing   bool   `json:"pricing"`
	Prices    Prices `json:"prices"`
}

// maxPriceDigits bounds a price (a uint256 has 78 digits): a longer number is
// an error, not a big allocation.
const maxPriceDigits = 78

// normalize checks the prices and writes "0" for absent ones.
func (p *Prices) normalize() error {
	for _, f := range []struct {
		name string
		v    *string
	}{{"message", &p.Message}, {"gigafuel", &p.Gigafuel}, {"verification", &p.Verification}, {"dryRun", &p.DryRun}} {
		s := strings.TrimSpace(*f.v)
		if s == "" {
			s = "0"
		}
		if len(s) > maxPriceDigits {
			return fmt.Errorf("price %s: more than %d digits", f.name, maxPriceDigits)
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return fmt.Errorf("price %s %q: not a non-negative integer", f.name, s)
			}
		}
		s = strings.TrimLeft(s, "0")
		if s == "" {
			s = "0"
		}
		*f.v = s
	}
	if len(p.Token) > 256 {
		return errors.New("token: too long")
	}
	return nil
}

// messagePrice is the per-message price as a number (normalize ran).
func (p Prices) messagePrice() *big.Int {
	n, ok := new(big.Int).SetString(p.Message, 10)
	if !ok {
		return new(big.Int)
	}
	return n
}

// maxInfoBytes bounds the GET / answer read from a CU.
const maxInfoBytes = 64 << 10

// ParseInfo reads a CU's GET / answer. Prices are checked (decimal integers,
// bounded); with pricing off they are all "0" whatever the CU wrote, as the
// market shapes say.
func ParseInfo(b []byte) (Info, error) {
	if len(b) > maxInfoBytes {
		return Info{}, fmt.Errorf("placement: CU info: %d bytes, more than %d", len(b), maxInfoBytes)
	}
	var raw struct {
		Address   string          `json:"address"`
		Timestamp json.Number     `json:"timestamp"`
		Pricing   bool            `json:"pricing"`
		Prices    json.RawMessage `json:"prices"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Info{}, fmt.Errorf("placement: CU info is not JSON: %w", err)
	}
	in := Info{Address: raw.Address, Pricing: raw.Pricing}
	if len(in.Address) > 256 {
		return Info{}, errors.New("placement: CU info: address too long")
	}
	if raw.Timestamp != "" {
		ts, err := raw.Timestamp.Int64()
		if err != nil {
			return Info{}, fmt.Errorf("placement: CU info: timestamp %q: %w", raw.Timestamp, err)
		}
		in.Timestamp = ts
	}
	if in.Pricing && len(raw.Prices) > 0 && string(raw.Prices) != "null" {
		if err := json.Unmarshal(raw.Prices, &in.Prices); err != nil {
			return Info{}, fmt.Errorf("placement: CU info: prices: %w", err)
		}
	} else {
		in.Prices = Prices{}
	}
	if err := in.Prices.normalize(); err != nil {
		return Info{}, fmt.Errorf("placement: CU info: %w", err)
	}
	return in, nil
}

// Tag is a data item tag as the gateway's GraphQL returns it.
type Tag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Record is a CU's signed price record (Type: Compute-Price) as found on the
// gateway: the owner is the CU wallet, Url where it serves.
type Record struct {
	Owner  string
	URL    string
	Prices Prices
	// Time is when the record was made (its Timestamp tag in ms, else its
	// block's time, else when it was read: not yet in a block).
	Time time.Time
	TTL  time.Duration
}

// DefaultRecordTTL is a price record's Time-To-Live when it states none.
const DefaultRecordTTL = 24 * time.Hour

// ParseRecord reads a Compute-Price record's tags (names case-insensitive,
// first value wins, as for Scheduler-Location). blockTime is the zero time for
// an item not yet in a block, which counts as made at now.
func ParseRecord(owner string, tags []Tag, blockTime, now time.Time) (Record, error) {
	get := map[string]string{}
	for _, t := range tags {
		k := strings.ToLower(t.Name)
		if _, ok := get[k]; !ok {
			get[k] = t.Value
		}
	}
	if get["type"] != "Compute-Price" {
		return Record{}, fmt.Errorf("placement: record of %s: Type %q, not Compute-Price", owner, get["type"])
	}
	r := Record{Owner: owner, TTL: DefaultRecordTTL, Prices: Prices{Token: get["token"], Message: get["price-message"],
		Gigafuel: get["price-gigafuel"], Verification: get["price-verification"], DryRun: get["price-dry-run"]}}
	if owner == "" || len(owner) > 256 {
		return Record{}, errors.New("placement: record without a usable owner")
	}
	u, err := normalizeURL(get["url"])
	if err != nil {
		return Record{}, fmt.Errorf("placement: record of %s: %w", owner, err)
	}
	r.URL = u
	if err := r.Prices.normalize(); err != nil {
		return Record{}, fmt.Errorf("placement: record of %s: %w", owner, err)
	}
	if s, ok := get["time-to-live"]; ok {
		ms, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || ms < 0 || ms > int64(10*365*24*time.Hour/time.Millisecond) {
			return Record{}, fmt.Errorf("placement: record of %s: Time-To-Live %q", owner, s)
		}
		r.TTL = time.Duration(ms) * time.Millisecond
	}
	switch {
	case get["timestamp"] != "":
		ms, err := strconv.ParseInt(strings.TrimSpace(get["timestamp"]), 10, 64)
		if err != nil || ms < 0 || ms > 1<<53 {
			return Record{}, fmt.Errorf("placement: record of %s: Timestamp %q", owner, get["timestamp"])
		}
		r.Time = time.UnixMilli(ms)
	case !blockTime.IsZero():
		r.Time = blockTime
	default:
		r.Time = now
	}
	return r, nil
}

// Expired reports whether the record is older than its Time-To-Live at now.
func (r Record) Expired(now time.Time) bool { return now.Sub(r.Time) > r.TTL }

// normalizeURL checks a CU base URL (http or https, a host, no query) and
// trims trailing slashes, so that one CU has one spelling in the table.
func normalizeURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("CU URL %q: want http(s)://host[:port][/path]", s)
	}
	if len(s) > 2048 {
		return "", errors.New("CU URL too long")
	}
	return strings.TrimRight(s, "/"), nil
}

// ParseURLs splits a comma-separated list of CU URLs (a --cu-url flag or
// CU_URL), checking each and dropping repeats.
func ParseURLs(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		u, err := normalizeURL(s)
		if err != nil {
			return nil, err
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out, nil
}
