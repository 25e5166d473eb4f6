package su

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/aonode/aonode/ans104"
)

// PageParams are the query parameters of GET /{process-id} (units.md §3.4).
type PageParams struct {
	From, To           *int64 // timestamps: from exclusive, to inclusive
	FromNonce, ToNonce *int64 // nonce mode when either is set: from exclusive, to inclusive
	Limit              int    // default 100
	ShowAnchor         bool   // show assignment anchors as base64url
}

// DefaultLimit is the page size when limit is absent; MaxLimit caps it.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
	maxRun       = 100000 // the most edges one timestamp can span on a page
)

// maxPageBytes: a page stops growing past this many item bytes (a variable
// for tests).
var maxPageBytes = 64 << 20

// ParsePageParams reads from, to, limit, from-nonce, to-nonce and show-anchor.
// Numbers must be decimal integers; a limit above MaxLimit is lowered to it.
func ParsePageParams(q url.Values) (PageParams, error) {
	p := PageParams{Limit: DefaultLimit, ShowAnchor: q.Has("show-anchor")}
	num := func(name string, dst **int64) error {
		if !q.Has(name) {
			return nil
		}
		v, err := strconv.ParseInt(q.Get(name), 10, 64)
		if err != nil {
			return inputErr("Invalid %s parameter %q", name, q.Get(name))
		}
		*dst = &v
		return nil
	}
	for _, f := range []struct {
		name string
		dst  **int64
	}{{"from", &p.From}, {"to", &p.To}, {"from-nonce", &p.FromNonce}, {"to-nonce", &p.ToNonce}} {
		if err := num(f.name, f.dst); err != nil {
			return p, err
		}
	}
	if q.Has("limit") {
		n, err := strconv.ParseInt(q.Get("limit"), 10, 32)
		if err != nil || n < 1 {
			return p, inputErr("Invalid limit parameter %q", q.Get("limit"))
		}
		p.Limit = int(min(n, MaxLimit))
	}
	return p, nil
}

// Reader renders the SU's read routes from a Store.
type Reader struct{ Store Store }

func parseItem(b []byte, what string) (*ans104.DataItem, error) {
	it, err := ans104.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("su: stored %s is corrupt: %w", what, err)
	}
	return it, nil
}

// SlotToJSON renders a stored slot.
func SlotToJSON(s *SlotRecord, showAnchor bool) (MessageJSON, error) {
	a, err := parseItem(s.Assignment, "assignment "+s.AssignmentID)
	if err != nil {
		return MessageJSON{}, err
	}
	var m *ans104.DataItem
	if s.Message != nil {
		if m, err = parseItem(s.Message, "message "+s.MessageID); err != nil {
			return MessageJSON{}, err
		}
	}
	return SlotJSON(a, m, showAnchor), nil
}

// ProcessToJSON renders GET /processes/{id}.
func ProcessToJSON(p *ProcessRecord) (ProcessJSON, error) {
	it, err := parseItem(p.Item, "process "+p.ID)
	if err != nil {
		return ProcessJSON{}, err
	}
	return processJSON(it, p.BlockHeight, p.Timestamp, !p.Legacy()), nil
}

// Message answers GET /{id} for a message or assignment id: the oldest slot
// whose message id or assignment id is id. A pure assignment is answered only
// when asked for by its assignment id. ok is false when id is neither.
func (r Reader) Message(ctx context.Context, id string, showAnchor bool) (_ *MessageJSON, ok bool, _ error) {
	s, err := r.Store.SlotByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return slotAnswer(s, id, showAnchor)
}

// MessageIn is Message within the schedule of process pid ("" for any): the
// slot of pid whose assignment id is id, else pid's first slot of message id
// (a message assigned to several processes has a slot in each). ok is false
// when pid's schedule has no such slot, even if another process's has.
func (r Reader) MessageIn(ctx context.Context, pid, id string, showAnchor bool) (_ *MessageJSON, ok bool, _ error) {
	if pid == "" {
		return r.Message(ctx, id, showAnchor)
	}
	s, err := r.Store.SlotByID(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	if err != nil || s.ProcessID != pid {
		got, err := r.Store.Scheduled(ctx, pid, []string{id})
		if err != nil {
			return nil, false, err
		}
		if s = got[id]; s == nil {
			return nil, false, nil
		}
	}
	return slotAnswer(s, id, showAnchor)
}

// slotAnswer is the answer to GET /{id} from s, the slot found for id: a
// pure assignment is answered only when asked for by its assignment id.
func slotAnswer(s *SlotRecord, id string, showAnchor bool) (_ *MessageJSON, ok bool, _ error) {
	if s.Message == nil && !(s.MessageID != s.ProcessID && s.AssignmentID == id) {
		return nil, false, nil
	}
	j, err := SlotToJSON(s, showAnchor)
	if err != nil {
		return nil, false, err
	}
	return &j, true, nil
}

// Latest answers GET /{process}/latest: the slot with the highest nonce.
func (r Reader) Latest(ctx context.Context, pid string) (*MessageJSON, error) {
	s, err := r.Store.LastSlot(ctx, pid)
	if errors.Is(err, ErrNotFound) {
		return nil, inputErr("Latest message not available")
	}
	if err != nil {
		return nil, err
	}
	j, err := SlotToJSON(s, false)
	return &j, err
}

// Page answers GET /{process}: a page of the schedule. Under AOP-6 the process
// itself is the first edge of the first page. In timestamp mode a page never
// ends inside a run of slots sharing one timestamp, because the next page starts
// after the last cursor (from is exclusive) and would skip the rest of the run.
func (r Reader) Page(ctx context.Context, proc *ProcessRecord, pp PageParams) (*PageJSON, error) {
	nonceMode := pp.FromNonce != nil || pp.ToNonce != nil
	includeProcess := !proc.Legacy()
	if nonceMode {
		includeProcess = includeProcess && (pp.FromNonce == nil || *pp.FromNonce == -1)
	} else {
		includeProcess = includeProcess && pp.From == nil
	}
	limit := max(pp.Limit, 1)
	dbLimit := limit
	if includeProcess {
		dbLimit--
	}
	q := SlotQuery{Limit: dbLimit + 1, MaxBytes: maxPageBytes}
	if nonceMode {
		q.AfterNonce, q.UntilNonce = pp.FromNonce, pp.ToNonce
	} else {
		q.AfterTimestamp, q.UntilTimestamp, q.ByTimestamp = pp.From, pp.To, true
	}
	rows, err := r.Store.Slots(ctx, proc.ID, q)
	if err != nil {
		return nil, err
	}
	cut := min(len(rows), dbLimit)
	bytes := 0
	for i := range cut {
		bytes += len(rows[i].Assignment) + len(rows[i].Message)
		if bytes > maxPageBytes && i > 0 {
			cut = i
			break
		}
	}
	hasNext := cut < len(rows)
	if !nonceMode && hasNext && cut > 0 && rows[cut].Timestamp == rows[cut-1].Timestamp {
		ts := rows[cut-1].Timestamp
		k := cut - 1
		for k > 0 && rows[k-1].Timestamp == ts {
			k--
		}
		if k > 0 || includeProcess {
			cut = k
		} else {
			// The whole page is one timestamp: take the rest of its run.
			more, err := r.Store.Slots(ctx, proc.ID, SlotQuery{AfterTimestamp: ptr(ts - 1), UntilTimestamp: ptr(ts),
				AfterNonce: ptr(rows[cut-1].Nonce), ByTimestamp: true, Limit: maxRun})
			if err != nil {
				return nil, err
			}
			rows = append(rows[:cut:cut], more...)
			cut = len(rows)
			after, err := r.Store.Slots(ctx, proc.ID, SlotQuery{AfterTimestamp: ptr(ts), UntilTimestamp: pp.To, ByTimestamp: true, Limit: 1})
			if err != nil {
				return nil, err
			}
			hasNext = len(after) > 0
		}
	}
	rows = rows[:cut]

	page := &PageJSON{PageInfo: PageInfoJSON{HasNextPage: hasNext}, Edges: make([]EdgeJSON, 0, len(rows)+1)}
	cursor := func(ts, nonce int64) string {
		if nonceMode {
			return strconv.FormatInt(nonce, 10)
		}
		return strconv.FormatInt(ts, 10)
	}
	if includeProcess {
		a, err := parseItem(proc.Assignment, "assignment of process "+proc.ID)
		if err != nil {
			return nil, err
		}
		it, err := parseItem(proc.Item, "process "+proc.ID)
		if err != nil {
			return nil, err
		}
		page.Edges = append(page.Edges, EdgeJSON{Node: ProcessEdgeJSON(a, it, pp.ShowAnchor), Cursor: cursor(proc.Timestamp, proc.Nonce)})
	}
	for _, s := range rows {
		j, err := SlotToJSON(s, pp.ShowAnchor)
		if err != nil {
			return nil, err
		}
		page.Edges = append(page.Edges, EdgeJSON{Node: j, Cursor: cursor(s.Timestamp, s.Nonce)})
	}
	return page, nil
}

func ptr[T any](v T) *T { return &v }
