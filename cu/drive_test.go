package cu

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/su"
)

// availRecord is an Attestation (individual false) or Available record.
type availRecord struct {
	owner, id  string
	individual bool
	height     int64
}

// fakeAvailGateway answers Q11 from records and serves any id's data.
type fakeAvailGateway struct {
	records []availRecord
	tip     int64
	broken  bool
	queries []AvailabilityQuery
}

func (f *fakeAvailGateway) Available(_ context.Context, q AvailabilityQuery) (bool, error) {
	f.queries = append(f.queries, q)
	if f.broken {
		return false, errors.New("gateway unreachable")
	}
	for _, r := range f.records {
		if r.individual == q.Individual && r.id == q.ID && r.height <= q.MaxHeight && slices.Contains(q.Owners, r.owner) {
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeAvailGateway) Blocks(_ context.Context, min int64, limit int) ([]BlockMeta, error) {
	if f.tip < min {
		return nil, nil
	}
	return []BlockMeta{{Height: min}}, nil
}

func (f *fakeAvailGateway) Tx(context.Context, string) (*Tx, error) { return nil, ErrNotFound }
func (f *fakeAvailGateway) Raw(context.Context, string) ([]byte, error) {
	return nil, ErrNotFound
}
func (f *fakeAvailGateway) SchedulerLocation(context.Context, string) (string, time.Duration, error) {
	return "", 0, ErrNotFound
}
func (f *fakeAvailGateway) Upload(context.Context, []byte) error { return nil }
func (f *fakeAvailGateway) Drive() wasm.Arweave                  { return fakeBase{} }

type fakeBase struct{}

func (fakeBase) Data(_ context.Context, id string, _ int64) (wasm.Blob, error) {
	return bytes.NewReader([]byte("data of " + id)), nil
}
func (fakeBase) Tx(_ context.Context, id string) ([]byte, error) { return []byte(id), nil }
func (fakeBase) Block(context.Context, int64) ([]byte, error)    { return []byte("block"), nil }

func TestDriveAdmissibility(t *testing.T) {
	id := func(c byte) string { return strings.Repeat(string(c), 43) }
	var (
		sched, att, other = id('S'), id('A'), id('O')
		item, boot        = id('I'), id('B')
	)
	tags := func(kv ...string) []su.TagJSON {
		var ts []su.TagJSON
		for i := 0; i < len(kv); i += 2 {
			ts = append(ts, su.TagJSON{Name: kv[i], Value: kv[i+1]})
		}
		return ts
	}
	wd := tags("Extension", "WeaveDrive")
	proc := tags("Scheduler", sched)
	attested := []availRecord{{owner: sched, id: item, height: 10}}
	available := []availRecord{{owner: sched, id: item, individual: true, height: 10}}

	const (
		ok        = "ok"
		notFound  = "not found"
		cannot    = "422"
		hostError = "host error"
	)
	cases := []struct {
		name     string
		proc     []su.TagJSON
		mod      []su.TagJSON
		records  []availRecord
		id       string
		height   int64
		tip      int64 // default: height
		broken   bool
		want     string
		wantQ    int // GraphQL availability queries made (-1: don't check)
		wantOwns []string
	}{
		{name: "attested by scheduler", proc: proc, mod: wd, records: attested, id: item, height: 10, want: ok, wantQ: 1, wantOwns: []string{sched}},
		{name: "attested at a later height", proc: proc, mod: wd, records: attested, id: item, height: 9, want: notFound, wantQ: 1},
		{name: "not attested", proc: proc, mod: wd, id: item, height: 10, want: notFound, wantQ: 1},
		{name: "attested by someone else", proc: proc, mod: wd, records: []availRecord{{owner: other, id: item, height: 1}}, id: item, height: 10, want: notFound, wantQ: 1},
		{name: "attested by an Attestor", proc: tags("Scheduler", sched, "Attestor", att, "Attestor", ""), mod: wd,
			records: []availRecord{{owner: att, id: item, height: 1}}, id: item, height: 10, want: ok, wantQ: 1, wantOwns: []string{sched, att}},
		{name: "last Scheduler tag counts", proc: tags("Scheduler", other, "Scheduler", sched), mod: wd, records: attested, id: item, height: 10, want: ok, wantOwns: []string{sched}, wantQ: 1},
		{name: "extension on the process", proc: tags("Scheduler", sched, "Extension", "WeaveDrive"), records: attested, id: item, height: 10, want: ok, wantQ: 1},
		{name: "no WeaveDrive extension", proc: proc, records: attested, id: item, height: 10, want: notFound, wantQ: 0},
		{name: "On-Boot needs no check", proc: tags("On-Boot", boot), id: boot, height: 10, want: ok, wantQ: 0},
		{name: "On-Boot is only that id", proc: tags("Scheduler", sched, "On-Boot", boot), mod: wd, id: item, height: 10, want: notFound, wantQ: 1},
		{name: "no attestors", proc: nil, mod: wd, records: attested, id: item, height: 10, want: notFound, wantQ: 0},
		{name: "not an id", proc: proc, mod: wd, id: `x"] }) { x`, height: 10, want: notFound, wantQ: 0},
		{name: "Individual: Available record", proc: tags("Scheduler", sched, "Availability-Type", "Individual"), mod: wd, records: available, id: item, height: 10, want: ok, wantQ: 2},
		{name: "Individual: attested suffices", proc: tags("Scheduler", sched, "Availability-Type", "Individual"), mod: wd, records: attested, id: item, height: 10, want: ok, wantQ: 1},
		{name: "Individual: neither", proc: tags("Scheduler", sched, "Availability-Type", "Individual"), mod: wd, id: item, height: 10, want: notFound, wantQ: 2},
		{name: "Individual from the module", proc: proc, mod: tags("Extension", "WeaveDrive", "Availability-Type", "Individual"), records: available, id: item, height: 10, want: ok, wantQ: 2},
		{name: "process mode overrides module", proc: tags("Scheduler", sched, "Availability-Type", "Assignments"),
			mod: tags("Extension", "WeaveDrive", "Availability-Type", "Individual"), records: available, id: item, height: 10, want: notFound, wantQ: 1},
		{name: "Assignments ignores Available", proc: proc, mod: wd, records: available, id: item, height: 10, want: notFound, wantQ: 1},
		{name: "Library: attested", proc: tags("Scheduler", sched, "Availability-Type", "Library"), mod: wd, records: attested, id: item, height: 10, want: ok, wantQ: 1},
		{name: "Library: not attested", proc: tags("Scheduler", sched, "Availability-Type", "Library"), mod: wd, id: item, height: 10, want: cannot, wantQ: 1},
		{name: "unknown mode", proc: tags("Scheduler", sched, "Availability-Type", "Everything"), mod: wd, records: attested, id: item, height: 10, want: cannot, wantQ: 0},
		{name: "unknown mode, On-Boot still read", proc: tags("Availability-Type", "Everything", "On-Boot", boot), mod: wd, id: boot, height: 10, want: ok, wantQ: 0},
		{name: "gateway failure", proc: proc, mod: wd, records: attested, id: item, height: 10, broken: true, want: hostError, wantQ: 1},
		{name: "gateway behind the message", proc: proc, mod: wd, id: item, height: 10, tip: 9, want: hostError, wantQ: 1},
		{name: "gateway behind, attested anyway", proc: proc, mod: wd, records: attested, id: item, height: 10, tip: 9, want: ok, wantQ: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gw := &fakeAvailGateway{records: c.records, tip: c.height, broken: c.broken}
			if c.tip != 0 {
				gw.tip = c.tip
			}
			d := newCheckedDrive(gw, newDrivePolicy("PID", c.proc, c.mod))
			blob, err := d.Data(context.Background(), c.id, c.height)
			var he *HTTPError
			got := ok
			switch {
			case errors.Is(err, wasm.ErrNotFound):
				got = notFound
			case errors.As(err, &he) && he.Code == http.StatusUnprocessableEntity:
				got = cannot
			case err != nil:
				got = hostError
				if errors.Is(err, ErrNotFound) {
					t.Errorf("a host error must not look like not found: %v", err)
				}
			default:
				b, _ := io.ReadAll(io.NewSectionReader(blob, 0, blob.Size()))
				if string(b) != "data of "+c.id {
					t.Errorf("data = %q", b)
				}
			}
			if got != c.want {
				t.Errorf("got %s (%v), want %s", got, err, c.want)
			}
			if c.wantQ >= 0 && len(gw.queries) != c.wantQ {
				t.Errorf("%d queries, want %d", len(gw.queries), c.wantQ)
			}
			for _, q := range gw.queries {
				if q.MaxHeight != c.height || q.ID != c.id {
					t.Errorf("query %+v", q)
				}
				if c.wantOwns != nil && !slices.Equal(q.Owners, c.wantOwns) {
					t.Errorf("owners %v, want %v", q.Owners, c.wantOwns)
				}
			}
		})
	}
}

// TestDriveAdmissionCache: an admission holds for later heights without a
// query, not for earlier ones; /tx and /block are not checked.
func TestDriveAdmissionCache(t *testing.T) {
	item := strings.Repeat("I", 43)
	sched := strings.Repeat("S", 43)
	gw := &fakeAvailGateway{records: []availRecord{{owner: sched, id: item, height: 10}}, tip: 100}
	d := newCheckedDrive(gw, newDrivePolicy("PID", []su.TagJSON{{Name: "Scheduler", Value: sched}}, []su.TagJSON{{Name: "Extension", Value: "WeaveDrive"}}))
	ctx := context.Background()
	for _, h := range []int64{20, 30, 20} {
		if _, err := d.Data(ctx, item, h); err != nil {
			t.Fatalf("height %d: %v", h, err)
		}
	}
	if len(gw.queries) != 1 {
		t.Fatalf("%d queries after three admitted reads", len(gw.queries))
	}
	if _, err := d.Data(ctx, item, 5); !errors.Is(err, wasm.ErrNotFound) {
		t.Fatalf("height 5: %v", err)
	}
	if _, err := d.Data(ctx, item, 15); err != nil || len(gw.queries) != 3 {
		t.Fatalf("height 15: %v after %d queries", err, len(gw.queries))
	}
	if b, err := d.Tx(ctx, "anything"); err != nil || string(b) != "anything" {
		t.Fatalf("tx: %q %v", b, err)
	}
	if _, err := d.Block(ctx, 7); err != nil {
		t.Fatalf("block: %v", err)
	}
	if len(gw.queries) != 3 {
		t.Fatalf("/tx or /block ran a query")
	}
}

// TestAvailabilityQueryText: Q11's shape, with literals escaped.
func TestAvailabilityQueryText(t *testing.T) {
	q := availabilityQuery(AvailabilityQuery{Owners: []string{"S", `a"b`}, ID: "ID", MaxHeight: 42})
	for _, want := range []string{`owners: ["S", "a\"b"],`, `block: {min: 0, max: 42},`, `{ name: "Type", values: ["Attestation"] },`,
		`{ name: "Message", values: ["ID"]}`, `{ name: "Data-Protocol", values: ["ao"] },`} {
		if !strings.Contains(q, want) {
			t.Errorf("query lacks %s:\n%s", want, q)
		}
	}
	q = availabilityQuery(AvailabilityQuery{Owners: []string{"S"}, ID: "ID", MaxHeight: 42, Individual: true})
	for _, want := range []string{`{ name: "Type", values: ["Available"]},`, `{ name: "ID", values: ["ID"]}`, `{ name: "Data-Protocol", values: ["WeaveDrive"] },`} {
		if !strings.Contains(q, want) {
			t.Errorf("query lacks %s:\n%s", want, q)
		}
	}
}
