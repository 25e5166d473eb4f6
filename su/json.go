package su

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/aonode/aonode/ans104"
)

// The JSON shapes of the reference SU (servers/su/src/domain/core/json.rs), field
// for field and in the same order. SU JSON is snake_case.

// OwnerJSON is an item's owner: the address (base64url SHA-256 of the key) and the key.
type OwnerJSON struct {
	Address string `json:"address"`
	Key     string `json:"key"`
}

// TagJSON is one tag as UTF-8 text.
type TagJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// MessageInnerJSON is the scheduled item of an edge.
type MessageInnerJSON struct {
	ID        string    `json:"id"`
	Owner     OwnerJSON `json:"owner"`
	Data      *string   `json:"data"`
	Tags      []TagJSON `json:"tags"`
	Signature string    `json:"signature"`
	Anchor    *string   `json:"anchor"`
	Target    *string   `json:"target"`
}

// AssignmentInnerJSON is the SU's assignment of an edge.
type AssignmentInnerJSON struct {
	ID        string    `json:"id"`
	Owner     OwnerJSON `json:"owner"`
	Tags      []TagJSON `json:"tags"`
	Signature string    `json:"signature"`
	Anchor    *string   `json:"anchor"`
	Target    *string   `json:"target"`
}

// MessageJSON is one slot: the message (null for a pure assignment) and its assignment.
type MessageJSON struct {
	Message    *MessageInnerJSON   `json:"message"`
	Assignment AssignmentInnerJSON `json:"assignment"`
}

// EdgeJSON is one element of a page.
type EdgeJSON struct {
	Node   MessageJSON `json:"node"`
	Cursor string      `json:"cursor"`
}

// PageInfoJSON tells whether more edges follow.
type PageInfoJSON struct {
	HasNextPage bool `json:"has_next_page"`
}

// PageJSON is the paginated schedule of a process.
type PageJSON struct {
	PageInfo PageInfoJSON `json:"page_info"`
	Edges    []EdgeJSON   `json:"edges"`
}

// ProcessJSON is GET /processes/{id}.
type ProcessJSON struct {
	ProcessID string    `json:"process_id"`
	Block     string    `json:"block"`
	Owner     OwnerJSON `json:"owner"`
	Tags      []TagJSON `json:"tags"`
	Timestamp int64     `json:"timestamp"`
	Data      *string   `json:"data"`
	Anchor    *string   `json:"anchor"`
	Signature *string   `json:"signature"`
	Target    *string   `json:"target"`
}

// Lossy returns b as UTF-8, replacing each maximal ill-formed subsequence with
// U+FFFD, exactly as Rust's String::from_utf8_lossy (and the WHATWG decoder) does.
func Lossy(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			out = append(out, b[i:i+n]...)
			i += n
			continue
		}
		out = append(out, "\uFFFD"...)
		i += maximalSubpart(b[i:])
	}
	return string(out)
}

// maximalSubpart is the length of the longest prefix of b (which starts with an
// ill-formed sequence) that is a prefix of some well-formed sequence; at least 1.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}

func strPtr(s string) *string { return &s }

func ownerJSON(d *ans104.DataItem) OwnerJSON {
	return OwnerJSON{Address: d.OwnerAddress(), Key: ans104.Base64URL(d.Owner)}
}

func tagsJSON(tags []ans104.Tag) []TagJSON {
	out := make([]TagJSON, len(tags))
	for i, t := range tags {
		out[i] = TagJSON{Name: Lossy([]byte(t.Name)), Value: Lossy([]byte(t.Value))}
	}
	return out
}

// anchorText is the reference's DataItem::anchor: the anchor bytes when they are
// valid UTF-8 (and not empty), else null.
func anchorText(a []byte) *string {
	if len(a) == 0 || !utf8.Valid(a) {
		return nil
	}
	return strPtr(string(a))
}

// anchorShown is DataItem::anchor_b64, used for assignments under show-anchor:
// UTF-8 text when valid, else base64url.
func anchorShown(a []byte) *string {
	if len(a) == 0 {
		return nil
	}
	if utf8.Valid(a) {
		return strPtr(string(a))
	}
	return strPtr(ans104.Base64URL(a))
}

func assignmentJSON(a *ans104.DataItem, showAnchor bool) AssignmentInnerJSON {
	anchor := anchorText(a.Anchor)
	if showAnchor {
		anchor = anchorShown(a.Anchor)
	}
	return AssignmentInnerJSON{
		ID:        a.ID(),
		Owner:     ownerJSON(a),
		Tags:      tagsJSON(a.Tags),
		Signature: ans104.Base64URL(a.Signature),
		Anchor:    anchor,
		Target:    strPtr(ans104.Base64URL(a.Target)),
	}
}

// SlotJSON renders a scheduled slot: the message is nil for a pure assignment.
func SlotJSON(assignment, message *ans104.DataItem, showAnchor bool) MessageJSON {
	out := MessageJSON{Assignment: assignmentJSON(assignment, showAnchor)}
	if message != nil {
		out.Message = &MessageInnerJSON{
			ID:        message.ID(),
			Owner:     ownerJSON(message),
			Data:      strPtr(Lossy(message.Data)),
			Tags:      tagsJSON(message.Tags),
			Signature: ans104.Base64URL(message.Signature),
			Anchor:    anchorText(message.Anchor),
			Target:    strPtr(ans104.Base64URL(message.Target)),
		}
	}
	return out
}

// ProcessEdgeJSON renders the process itself as the first edge (AOP-6): its
// message is built from the process item, with data only when it is UTF-8 and a
// null target when it has none.
func ProcessEdgeJSON(assignment, process *ans104.DataItem, showAnchor bool) MessageJSON {
	p := processJSON(process, "", 0, true)
	return MessageJSON{
		Message: &MessageInnerJSON{
			ID: p.ProcessID, Owner: p.Owner, Data: p.Data, Tags: p.Tags,
			Signature: *p.Signature, Anchor: p.Anchor, Target: p.Target,
		},
		Assignment: assignmentJSON(assignment, showAnchor),
	}
}

// processJSON renders a process record. Legacy processes (no assignment) show
// null data, as the reference does (permaweb/ao#994).
func processJSON(process *ans104.DataItem, block string, timestamp int64, withData bool) ProcessJSON {
	p := ProcessJSON{
		ProcessID: process.ID(),
		Block:     block,
		Owner:     ownerJSON(process),
		Tags:      tagsJSON(process.Tags),
		Timestamp: timestamp,
		Anchor:    anchorText(process.Anchor),
		Signature: strPtr(ans104.Base64URL(process.Signature)),
	}
	if withData && utf8.Valid(process.Data) {
		p.Data = strPtr(string(process.Data))
	}
	if process.Target != nil {
		p.Target = strPtr(ans104.Base64URL(process.Target))
	}
	return p
}

// marshalJSON encodes v without HTML escaping, as serde_json writes it.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// PadHeight writes a block height as the SU's 12-digit zero-padded string.
func PadHeight(h int64) string {
	s := strconv.FormatInt(h, 10)
	for len(s) < 12 {
		s = "0" + s
	}
	return s
}
