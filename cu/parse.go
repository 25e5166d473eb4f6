package cu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aonode/aonode/su"
)

// Parsers of outside input: process/module tags and query parameters. Each
// reproduces the npm function the reference CU uses, because a different
// reading of a tag changes which processes run and when crons fire.

// jsParseInt is JavaScript's parseInt(s, 10): leading whitespace, an optional
// sign, then as many digits as there are. ok is false where JS gives NaN.
func jsParseInt(s string) (int64, bool) {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	f, _ := strconv.ParseFloat(s[:i], 64) // JS numbers are doubles
	if neg {
		f = -f
	}
	if f > math.MaxInt64 || f < math.MinInt64 {
		return 0, false
	}
	return int64(f), true
}

var bytesRE = regexp.MustCompile(`(?i)^(([-+])?(\d+(?:\.\d+)?)) *(kb|mb|gb|tb|pb)$`)

// parseMemoryLimit reads a Memory-Limit tag as the reference does: the first
// "-" removed, then npm bytes' parse (binary units; "1-gb" = 1 GiB).
func parseMemoryLimit(v string) (int64, bool) {
	v = strings.Replace(v, "-", "", 1)
	m := bytesRE.FindStringSubmatch(v)
	if m == nil {
		return jsParseInt(v)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	mult := map[string]float64{"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}[strings.ToLower(m[4])]
	r := math.Floor(f * mult)
	if r > math.MaxInt64 {
		return 0, false
	}
	return int64(r), true
}

// ---- cron ----

// cronSpec is one declared cron (units.md §5.10).
type cronSpec struct {
	ID      string // "<index>-<interval>"
	Blocks  int64  // period in blocks (block-based)
	Seconds int64  // period in seconds (time-based); 0 with Blocks 0 = never fires
	Tags    []su.TagJSON
}

var cronTagRE = regexp.MustCompile(`^Cron-Tag-(.+)$`)

// msRE is npm ms 2.1.3's parser.
var msRE = regexp.MustCompile(`(?i)^(-?(?:\d+)?\.?\d+) *(milliseconds?|msecs?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|years?|yrs?|y)?$`)

// msParse is npm ms 2.1.3 parse(): ok false is NaN/undefined.
func msParse(s string) (float64, bool) {
	if len(s) > 100 {
		return 0, false
	}
	m := msRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	const sec, min, hour, day = 1000.0, 60000.0, 3600000.0, 86400000.0
	switch strings.ToLower(m[2]) {
	case "years", "year", "yrs", "yr", "y":
		return n * day * 365.25, true
	case "weeks", "week", "w":
		return n * day * 7, true
	case "days", "day", "d":
		return n * day, true
	case "hours", "hour", "hrs", "hr", "h":
		return n * hour, true
	case "minutes", "minute", "mins", "min", "m":
		return n * min, true
	case "seconds", "second", "secs", "sec", "s":
		return n * sec, true
	default: // ms forms and no unit
		return n, true
	}
}

// parseCrons reads the Cron-Interval and Cron-Tag-* process tags.
func parseCrons(tags []su.TagJSON) ([]cronSpec, error) {
	type decl struct {
		interval string
		tags     []su.TagJSON
	}
	var decls []*decl
	for _, t := range tags {
		if t.Name == "Cron-Interval" {
			decls = append(decls, &decl{interval: t.Value, tags: []su.TagJSON{}})
			continue
		}
		if m := cronTagRE.FindStringSubmatch(t.Name); m != nil {
			if len(decls) == 0 {
				return nil, errors.New("cu: Cron-Tag before any Cron-Interval")
			}
			d := decls[len(decls)-1]
			d.tags = append(d.tags, su.TagJSON{Name: m[1], Value: t.Value})
		}
	}
	var blocks, times []cronSpec
	for _, d := range decls {
		parts := strings.Split(d.interval, "-")
		value, unit := parts[0], ""
		if len(parts) > 1 {
			unit = parts[1]
		}
		c := cronSpec{Tags: d.tags}
		if u := strings.TrimSpace(unit); u == "block" || u == "blocks" {
			n, ok := jsParseInt(value)
			if !ok || n <= 0 {
				return nil, fmt.Errorf("cu: invalid block-based Cron-Interval %q", d.interval)
			}
			c.Blocks = n
			c.ID = d.interval
			blocks = append(blocks, c)
			continue
		}
		msv, ok := msParse(strings.TrimSpace(value + " " + unit))
		if ok {
			c.Seconds = int64(math.Floor(msv / 1000))
			if c.Seconds <= 0 {
				return nil, errors.New("cu: time-based cron cannot be less than 1 second")
			}
		}
		c.ID = d.interval
		times = append(times, c)
	}
	sort.SliceStable(times, func(i, j int) bool { return cronOrder(times[i]) < cronOrder(times[j]) })
	for i := range blocks {
		blocks[i].ID = strconv.Itoa(i) + "-" + blocks[i].ID
	}
	for i := range times {
		times[i].ID = strconv.Itoa(i) + "-" + times[i].ID
	}
	return append(blocks, times...), nil
}

// cronOrder sorts NaN periods (never firing) last, as JS sort with a NaN
// comparator leaves them roughly in place; they never fire either way.
func cronOrder(c cronSpec) int64 {
	if c.Seconds == 0 {
		return math.MaxInt64
	}
	return c.Seconds
}

// ---- cursors ----

// Cursor is the reference CU's /results cursor (units.md §5.1).
type Cursor struct {
	Timestamp int64
	Ordinate  int64
	Cron      string
	Sort      string
	Bare      bool // only a timestamp was given
}

type cursorJSON struct {
	Timestamp int64  `json:"timestamp"`
	Ordinate  string `json:"ordinate"`
	Cron      string `json:"cron,omitempty"`
	Sort      string `json:"sort"`
}

// EncodeCursor writes standard base64 of the reference's JSON.
func EncodeCursor(ts, ordinate int64, cron, sort string) string {
	b, _ := json.Marshal(cursorJSON{Timestamp: ts, Ordinate: strconv.FormatInt(ordinate, 10), Cron: cron, Sort: sort})
	return base64.StdEncoding.EncodeToString(b)
}

// ParseCursor reads a from/to value: a cursor, else a bare timestamp.
func ParseCursor(s string) (Cursor, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		var c cursorJSON
		if json.Unmarshal(b, &c) == nil && c.Timestamp != 0 {
			ord, ok := jsParseInt(c.Ordinate)
			if !ok {
				ord = 0
			}
			return Cursor{Timestamp: c.Timestamp, Ordinate: ord, Cron: c.Cron, Sort: c.Sort}, nil
		}
	}
	n, ok := jsParseInt(s)
	if !ok {
		return Cursor{}, fmt.Errorf("invalid cursor or timestamp %q", s)
	}
	return Cursor{Timestamp: n, Bare: true}, nil
}
