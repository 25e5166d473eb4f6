package cu

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/su"
)

// fakeSched serves a fixed page, for tampering with the schedule.
type fakeSched struct {
	Scheduler
	page *su.PageJSON
}

func (f fakeSched) Messages(context.Context, string, string, string, int) (*su.PageJSON, error) {
	return f.page, nil
}

// TestHashChainTamper: a schedule whose Hash-Chain was altered is refused
// before the altered message is evaluated.
func TestHashChainTamper(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn()
	n.eval(pid, "return 1")
	n.eval(pid, "return 2")
	real := NewHTTPScheduler(n.suURL, NewHTTPGateway(n.gwURL))
	page, err := real.Messages(context.Background(), pid, "", "", 100)
	if err != nil || len(page.Edges) != 3 {
		t.Fatalf("page: %v %d", err, len(page.Edges))
	}
	tags := page.Edges[2].Node.Assignment.Tags
	for i := range tags {
		if tags[i].Name == "Hash-Chain" {
			tags[i].Value = page.Edges[1].Node.Assignment.Tags[i].Value // a valid-looking but wrong link
		}
	}
	gw := NewHTTPGateway(n.gwURL)
	s, err := New(context.Background(), Config{DataDir: t.TempDir(), Scheduler: fakeSched{real, page}, Gateway: gw})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Result(context.Background(), pid, page.Edges[2].Node.Message.ID)
	var he *HTTPError
	if !errors.As(err, &he) || he.Code != 422 || !strings.Contains(he.Msg, "Hash-Chain") {
		t.Fatalf("tampered: %v", err)
	}
	// The intact prefix was evaluated and stored.
	if _, ok, _ := s.store.resultByMessage(context.Background(), pid, page.Edges[1].Node.Message.ID); !ok {
		t.Fatal("prefix not evaluated")
	}
}

func TestParsers(t *testing.T) {
	for in, want := range map[string]int64{"1-gb": 1 << 30, "16-mb": 16 << 20, "512-kb": 512 << 10, "1073741824": 1 << 30, "1.5-gb": 3 << 29} {
		if got, ok := parseMemoryLimit(in); !ok || got != want {
			t.Errorf("Memory-Limit %q = %d %v, want %d", in, got, ok, want)
		}
	}
	crons, err := parseCrons([]su.TagJSON{{Name: "Cron-Interval", Value: "10-minutes"}, {Name: "Cron-Tag-Action", Value: "A"},
		{Name: "Cron-Interval", Value: "5-seconds"}, {Name: "Cron-Interval", Value: "3-blocks"}, {Name: "Cron-Interval", Value: "1-month"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range crons {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, ","); got != "0-3-blocks,0-5-seconds,1-10-minutes,2-1-month" {
		t.Fatalf("cron ids %s", got)
	}
	if _, err := parseCrons([]su.TagJSON{{Name: "Cron-Interval", Value: "1-millisecond"}}); err == nil {
		t.Fatal("1-millisecond accepted")
	}
	c := EncodeCursor(1700000000000, 7, "0-1-second", "ASC")
	got, err := ParseCursor(c)
	if err != nil || got.Timestamp != 1700000000000 || got.Ordinate != 7 || got.Cron != "0-1-second" || got.Bare {
		t.Fatalf("cursor %+v %v", got, err)
	}
	if got, _ := ParseCursor("1700000000000"); !got.Bare || got.Timestamp != 1700000000000 {
		t.Fatalf("bare %+v", got)
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add(EncodeCursor(1, 2, "c", "DESC"))
	f.Add("123")
	f.Add("eyJ0aW1lc3RhbXAiOjF9")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err == nil && !c.Bare {
			if _, err := ParseCursor(EncodeCursor(c.Timestamp, c.Ordinate, c.Cron, c.Sort)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzTagParsers(f *testing.F) {
	f.Add("1-gb", "10-minutes")
	f.Add("-", "x-blocks")
	f.Fuzz(func(t *testing.T, mem, cron string) {
		parseMemoryLimit(mem)
		jsParseInt(mem)
		parseCrons([]su.TagJSON{{Name: "Cron-Interval", Value: cron}, {Name: "Cron-Tag-X", Value: mem}})
	})
}

func FuzzDryRunBody(f *testing.F) {
	f.Add([]byte(`{"Tags":[{"name":"a","value":"b"}],"Owner":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m map[string]jsonRaw
		if jsonUnmarshal(b, &m) == nil {
			d, err := dryRunDoc(m, "p", 1, 2)
			if err == nil {
				if _, err := jsonText(d); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

type jsonRaw = json.RawMessage

var jsonUnmarshal = json.Unmarshal

func TestOutputIsOOM(t *testing.T) {
	const oom = "not enough memory for buffer allocation"
	for _, c := range []struct {
		output string
		want   bool
	}{
		{`"` + oom + `"`, true},
		{`"lua: ` + oom + `"`, true},
		{`"` + oom + ` (no)"`, false},
		{`{"data":{"output":"x ` + oom + `"}}`, true},      // older aos
		{`{"data":"` + oom + `","prompt":"aos> "}`, false}, // the reference reads data.output only
		{`{"data":{"output":42}}`, false},
		{`42`, false},
		{`null`, false},
	} {
		if got := outputIsOOM(json.RawMessage(c.output)); got != c.want {
			t.Errorf("outputIsOOM(%s) = %v, want %v", c.output, got, c.want)
		}
	}
	// The result keeps no Error, as in the reference.
	r := mapResult(&wasm.Result{Output: json.RawMessage(`"` + oom + `"`), Patches: json.RawMessage(`[]`)})
	if r.isError || strings.Contains(string(r.json), `"Error"`) {
		t.Fatalf("OOM output mapped to an error: %s", r.json)
	}
}

func TestModuleExtensions(t *testing.T) {
	wd := []su.TagJSON{{Name: "Extension", Value: "WeaveDrive"}}
	for _, c := range []struct {
		format string
		tags   []su.TagJSON
		want   string
	}{
		{wasm.FormatEmscripten4, nil, ""},
		{wasm.FormatEmscripten4, wd, "WeaveDrive"},
		{wasm.FormatWasm64, nil, "WeaveDrive"}, // always, as the reference
		{wasm.FormatWasm64, wd, "WeaveDrive"},
		{wasm.FormatWasm64Metering, nil, ""}, // only the exact wasm64 format
		{wasm.FormatEmscripten4, []su.TagJSON{{Name: "Extension", Value: "Other"}}, "Other"},
	} {
		if got := strings.Join(moduleExtensions(c.format, c.tags), ","); got != c.want {
			t.Errorf("moduleExtensions(%s, %v) = %q, want %q", c.format, c.tags, got, c.want)
		}
	}
}
