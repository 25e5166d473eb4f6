package cu

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/su"
)

// WeaveDrive admissibility (runtime.md §10.2). The reference drive
// (permaweb/aos extensions/weavedrive, checkAdmissible) lets a process read
// /data/<id> only when:
//
//   - id is the process's On-Boot tag value (no other check), else
//   - the module or the process has the Extension: WeaveDrive tag, and
//   - one of the attestors (the process's Scheduler tag and its Attestor
//     tags) published a Type: Attestation, Message: <id> item in a block at
//     most the evaluated message's Block-Height (gateway.md Q11), or, in
//     Availability-Type Individual, a Data-Protocol: WeaveDrive, Type:
//     Available, ID: <id> item.
//
// The mode is the process's Availability-Type, else the module's, else
// Assignments. Library mode reads what is attested and otherwise throws, as
// does an unknown mode; the reference's evaluation then never completes
// ("Cannot Process"). /tx/<id> and /block/<h> are not checked.
//
// Where the reference is non-deterministic this CU is stricter:
//
//   - A failed GraphQL query (transport, status, GraphQL errors) is a host
//     error: the message is not evaluated and a later request retries it. The
//     reference reads it as "not admissible".
//   - A negative answer is final only once the gateway has indexed a block
//     at the message's Block-Height; before that it is a host error too.
//   - Library without an attestation, and an unknown mode, fail the message's
//     evaluation with a 422 every time, so the process stops there.
//   - Ids that are not 43-character base64url, and an empty attestor list,
//     are not admissible without a query (the reference would splice them
//     into the query text; `owners: []` can mean "anyone").
//   - The reference CU's mode "test" and admissableList exist only for its
//     MODULE_MODE=llama and are not supported.
//
// Not admissible and not found both make io.open return nil (wasm.ErrNotFound).

// AvailabilityGateway is implemented by a Gateway that can run WeaveDrive's
// availability queries (gateway.md Q11); HTTPGateway does. Without it only
// the On-Boot item is admissible.
type AvailabilityGateway interface {
	// Available runs one query of Q11 and reports whether it has a result.
	Available(ctx context.Context, q AvailabilityQuery) (bool, error)
}

// AvailabilityQuery is one query of gateway.md Q11.
type AvailabilityQuery struct {
	// Individual selects the Type: Available, ID: <id>,
	// Data-Protocol: WeaveDrive record; otherwise Type: Attestation,
	// Message: <id>, Data-Protocol: ao.
	Individual bool
	Owners     []string // attestor addresses
	ID         string
	MaxHeight  int64 // block: {min: 0, max: MaxHeight}
}

// Availability modes (the Availability-Type tag).
const (
	modeAssignments = "Assignments"
	modeIndividual  = "Individual"
	modeLibrary     = "Library"
)

// drivePolicy is the per-process input of the admissibility rule.
type drivePolicy struct {
	pid        string
	boot       string   // On-Boot tag value ("" none)
	weaveDrive bool     // module or process has Extension: WeaveDrive
	mode       string   // Availability-Type
	attestors  []string // Scheduler tag, then Attestor tags
}

func newDrivePolicy(pid string, procTags, modTags []su.TagJSON) drivePolicy {
	p := drivePolicy{pid: pid, boot: lastTag(procTags, "On-Boot")}
	for _, tags := range [][]su.TagJSON{modTags, procTags} {
		for _, t := range tags {
			if t.Name == "Extension" && t.Value == wasm.ExtensionWeaveDrive {
				p.weaveDrive = true
			}
		}
	}
	p.mode = lastTag(procTags, "Availability-Type")
	if p.mode == "" {
		p.mode = lastTag(modTags, "Availability-Type")
	}
	if p.mode == "" {
		p.mode = modeAssignments
	}
	if s := lastTag(procTags, "Scheduler"); s != "" {
		p.attestors = append(p.attestors, s)
	}
	for _, t := range procTags {
		if t.Name == "Attestor" && t.Value != "" {
			p.attestors = append(p.attestors, t.Value)
		}
	}
	return p
}

// lastTag is the reference drive's getTagValue: the last value of name.
func lastTag(tags []su.TagJSON, name string) string {
	v := ""
	for _, t := range tags {
		if t.Name == name {
			v = t.Value
		}
	}
	return v
}

// checkedDrive is the WeaveDrive backend of one process: base serves the
// bytes, /data reads are admitted first.
type checkedDrive struct {
	base   wasm.Arweave
	gw     Gateway
	policy drivePolicy

	mu       sync.Mutex
	admitted map[string]int64 // id -> lowest Block-Height it was admitted at
}

func newCheckedDrive(gw Gateway, p drivePolicy) *checkedDrive {
	return &checkedDrive{base: gw.Drive(), gw: gw, policy: p, admitted: map[string]int64{}}
}

// Data implements wasm.Arweave.
func (d *checkedDrive) Data(ctx context.Context, id string, blockHeight int64) (wasm.Blob, error) {
	ok, err := d.admissible(ctx, id, blockHeight)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, wasm.ErrNotFound
	}
	return d.base.Data(ctx, id, blockHeight)
}

// Tx implements wasm.Arweave; the reference does not check /tx.
func (d *checkedDrive) Tx(ctx context.Context, id string) ([]byte, error) { return d.base.Tx(ctx, id) }

// Block implements wasm.Arweave; the reference does not check /block.
func (d *checkedDrive) Block(ctx context.Context, h int64) ([]byte, error) {
	return d.base.Block(ctx, h)
}

// admissible applies the rule for a read of id by a message at blockHeight.
// An error means no answer could be given (the message must not be
// evaluated now).
func (d *checkedDrive) admissible(ctx context.Context, id string, blockHeight int64) (bool, error) {
	p := d.policy
	if p.boot != "" && p.boot == id {
		return true, nil
	}
	if !p.weaveDrive {
		return false, nil
	}
	switch p.mode {
	case modeAssignments, modeIndividual, modeLibrary:
	default:
		return false, &HTTPError{Code: http.StatusUnprocessableEntity,
			Msg: fmt.Sprintf("Unsupported WeaveDrive mode %q: process %s cannot be evaluated", p.mode, p.pid)}
	}
	if _, err := ans104.DecodeID(id); err != nil || len(p.attestors) == 0 {
		return false, nil
	}
	// Admission is monotone in the height (a record at height <= h is also
	// <= any later h), and a process's Block-Heights never decrease.
	d.mu.Lock()
	h, ok := d.admitted[id]
	d.mu.Unlock()
	if ok && h <= blockHeight {
		return true, nil
	}
	ag, ok := d.gw.(AvailabilityGateway)
	if !ok {
		return false, nil
	}
	q := AvailabilityQuery{Owners: p.attestors, ID: id, MaxHeight: blockHeight}
	found, err := ag.Available(ctx, q)
	if err == nil && !found && p.mode == modeIndividual {
		q.Individual = true
		found, err = ag.Available(ctx, q)
	}
	if err != nil {
		return false, fmt.Errorf("cu: weavedrive availability of %s: %w", id, err)
	}
	if found {
		d.mu.Lock()
		if h, ok := d.admitted[id]; !ok || blockHeight < h {
			d.admitted[id] = blockHeight
		}
		d.mu.Unlock()
		return true, nil
	}
	// "Not there" is only an answer once the gateway has the block.
	bs, err := d.gw.Blocks(ctx, blockHeight, 1)
	if err != nil {
		return false, fmt.Errorf("cu: weavedrive availability of %s: %w", id, err)
	}
	if len(bs) == 0 || bs[0].Height < blockHeight {
		return false, fmt.Errorf("cu: weavedrive availability of %s: the gateway has not indexed block %d yet", id, blockHeight)
	}
	if p.mode == modeLibrary {
		return false, &HTTPError{Code: http.StatusUnprocessableEntity,
			Msg: fmt.Sprintf("WeaveDrive Availability-Type Library is not supported: process %s cannot read unattested %s", p.pid, id)}
	}
	return false, nil
}

// Available implements AvailabilityGateway with the reference's query text
// (gateway.md Q11: anonymous, inline literals, trailing comma). Strings are
// written as escaped GraphQL literals.
func (g *HTTPGateway) Available(ctx context.Context, q AvailabilityQuery) (bool, error) {
	var out struct {
		Transactions struct {
			Edges []json.RawMessage `json:"edges"`
		} `json:"transactions"`
	}
	if err := g.graphql(ctx, availabilityQuery(q), nil, &out); err != nil {
		return false, err
	}
	return len(out.Transactions.Edges) > 0, nil
}

func availabilityQuery(q AvailabilityQuery) string {
	owners := make([]string, len(q.Owners))
	for i, o := range q.Owners {
		owners[i] = gqlString(o)
	}
	tags := `{ name: "Type", values: ["Attestation"] },
              { name: "Message", values: [` + gqlString(q.ID) + `]}
              { name: "Data-Protocol", values: ["ao"] },`
	if q.Individual {
		tags = `{ name: "Type", values: ["Available"]},
              { name: "ID", values: [` + gqlString(q.ID) + `]}
              { name: "Data-Protocol", values: ["WeaveDrive"] },`
	}
	return `query {
          transactions(
            owners: [` + strings.Join(owners, ", ") + `],
            block: {min: 0, max: ` + strconv.FormatInt(q.MaxHeight, 10) + `},
            tags: [
              ` + tags + `
            ]
          ) 
          {
            edges {
              node {
                tags {
                  name
                  value
                }
              }
            }
          }
        }`
}

// gqlString is s as a GraphQL string literal (JSON's escapes are a subset).
func gqlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
