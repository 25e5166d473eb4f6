package cu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/aonode/aonode/ans104"
)

// Verification: another CU's attestation is checked by evaluating the same
// slot here, from this CU's own checkpoints and the SU's log (never the other
// CU's state), and comparing digests. Evaluation is deterministic (the fuel
// limit, not the clock, decides results), so two honest CUs agree byte for
// byte and any difference is a wrong result or a wrong memory.

// Verdict is the JSON view of a verdict item.
type Verdict struct {
	ID                   string `json:"id"`
	Owner                string `json:"owner"` // the verifying CU
	Attestation          string `json:"attestation"`
	Attester             string `json:"attester"`
	Verdict              string `json:"verdict"` // agree | disagree
	Process              string `json:"process"`
	Slot                 int64  `json:"slot"`
	Cron                 string `json:"cron,omitempty"`
	AttestedResultSHA256 string `json:"attestedResultSha256"`
	AttestedMemorySHA256 string `json:"attestedMemorySha256"`
	ExpectedResultSHA256 string `json:"expectedResultSha256"`
	ExpectedMemorySHA256 string `json:"expectedMemorySha256"`
	Fee                  string `json:"fee"`
	Payer                string `json:"payer"`
	Request              string `json:"request"`
}

// attested is what an attestation claims.
type attested struct {
	id, owner, pid, msg, cron string
	slot, ts                  int64
	resultSHA, memorySHA      string
}

// maxVerifyBody bounds POST /verify: an attestation carries a result, which
// the MU bounds far below this.
const maxVerifyBody = 16 << 20

// Verify checks the attestation in req, a data item signed by the payer
// whose data is the attestation item, or which names an attestation on the
// gateway in an Attestation tag. It returns the signed verdict.
func (s *Server) Verify(ctx context.Context, req []byte) ([]byte, *Verdict, error) {
	if s.cfg.NoAttestations {
		return nil, nil, httpErr(http.StatusNotImplemented, "This CU runs with attestations off and cannot verify")
	}
	if s.signer == nil {
		return nil, nil, httpErr(http.StatusServiceUnavailable, "This CU has no wallet to sign verdicts with")
	}
	it, err := ans104.ParseLimit(req, ans104.DefaultMaxTagBytes)
	if err != nil {
		return nil, nil, httpErr(http.StatusBadRequest, "The body must be a signed ANS-104 data item (the verification request): %v", err)
	}
	if err := it.Verify(); err != nil {
		return nil, nil, httpErr(http.StatusBadRequest, "The request item's signature does not verify: %v", err)
	}
	payer := it.OwnerAddress()
	a, err := s.readAttestation(ctx, it)
	if err != nil {
		return nil, nil, err
	}
	fee := int64(0)
	done := func(context.Context, *chargeRow) error { return nil }
	if s.pricing() {
		fee = s.cfg.Prices.Verification
		if done, err = s.reserve(ctx, payer, fee); err != nil {
			return nil, nil, err
		}
	}
	charged := false
	defer func() {
		if !charged {
			done(ctx, nil)
		}
	}()
	// The messages evaluated to check the slot are the requester's to pay.
	mine, err := s.ownAttestation(withPayer(ctx, payer), a)
	if err != nil {
		return nil, nil, err
	}
	v := &Verdict{Owner: s.cfg.Address, Attestation: a.id, Attester: a.owner, Process: a.pid, Slot: a.slot, Cron: a.cron,
		AttestedResultSHA256: a.resultSHA, AttestedMemorySHA256: a.memorySHA,
		ExpectedResultSHA256: mine.ResultSHA, ExpectedMemorySHA256: mine.MemorySHA,
		Fee: strconv.FormatInt(fee, 10), Payer: payer, Request: it.ID(), Verdict: "agree"}
	// The slot must also hold the message attested (an attestation of
	// another message at this slot is wrong whatever its digests).
	if mine.ResultSHA != a.resultSHA || mine.MemorySHA != a.memorySHA || a.cron == "" && mine.MessageID != a.msg {
		v.Verdict = "disagree"
		s.metrics.verifyDisagree.Add(1)
		s.log.Warn("attestation disagrees with this CU's evaluation", "attestation", a.id, "attester", a.owner, "process", a.pid,
			"slot", a.slot, "attested_result", a.resultSHA, "expected_result", mine.ResultSHA,
			"attested_memory", a.memorySHA, "expected_memory", mine.MemorySHA)
	} else {
		s.metrics.verifyAgree.Add(1)
	}
	tags := []ans104.Tag{
		{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Verdict"},
		{Name: "Attestation", Value: a.id}, {Name: "Attester", Value: a.owner}, {Name: "Verdict", Value: v.Verdict},
		{Name: "Process", Value: a.pid}, {Name: "Slot", Value: itoa(a.slot)},
	}
	if a.cron != "" {
		tags = append(tags, ans104.Tag{Name: "Cron", Value: a.cron})
	}
	tags = append(tags,
		ans104.Tag{Name: "Expected-Result-SHA-256", Value: mine.ResultSHA}, ans104.Tag{Name: "Expected-Memory-SHA-256", Value: mine.MemorySHA},
		ans104.Tag{Name: "Attested-Result-SHA-256", Value: a.resultSHA}, ans104.Tag{Name: "Attested-Memory-SHA-256", Value: a.memorySHA},
		ans104.Tag{Name: "Fee", Value: v.Fee}, ans104.Tag{Name: "Payer", Value: payer}, ans104.Tag{Name: "Request", Value: it.ID()},
		ans104.Tag{Name: "Content-Type", Value: "application/json"},
	)
	data, _ := jsonText(v)
	vi, err := ans104.Sign(s.signer, data, ans104.Options{Tags: tags})
	if err != nil {
		return nil, nil, fmt.Errorf("cu: sign verdict: %w", err)
	}
	v.ID = vi.ID()
	charged = true
	if err := done(ctx, &chargeRow{Payer: payer, Process: a.pid, Kind: "verify", Ref: it.ID(), Amount: fee}); err != nil {
		return nil, nil, err
	}
	if s.cfg.PublishAttestations {
		if err := s.gw.Upload(ctx, vi.Bytes()); err != nil {
			s.log.Warn("publishing a verdict failed", "verdict", v.ID, "err", err)
		}
	}
	return vi.Bytes(), v, nil
}

// readAttestation finds and checks the attestation a request names.
func (s *Server) readAttestation(ctx context.Context, req *ans104.DataItem) (*attested, error) {
	var tags func(string) (string, bool)
	var id, owner string
	var data []byte
	switch name, _ := req.Tag("Attestation"); {
	case len(req.Data) > 0:
		ai, err := ans104.ParseLimit(req.Data, ans104.DefaultMaxTagBytes)
		if err != nil {
			return nil, httpErr(http.StatusBadRequest, "The request's data must be the attestation item: %v", err)
		}
		if err := ai.Verify(); err != nil {
			return nil, httpErr(http.StatusBadRequest, "The attestation's signature does not verify: %v", err)
		}
		tags, id, owner, data = ai.Tag, ai.ID(), ai.OwnerAddress(), ai.Data
	case name != "":
		if !isID(name) {
			return nil, httpErr(http.StatusBadRequest, "Attestation tag %q is not an item id", name)
		}
		tx, err := s.gw.Tx(ctx, name)
		if errors.Is(err, ErrNotFound) {
			return nil, httpErr(http.StatusNotFound, "Attestation %s is not on the gateway", name)
		}
		if err != nil {
			return nil, fmt.Errorf("cu: read attestation %s: %w", name, err)
		}
		// The gateway verified the item's signature when it took it.
		if rl, ok := s.gw.(interface {
			RawLimit(context.Context, string, int64) ([]byte, error)
		}); ok {
			data, err = rl.RawLimit(ctx, name, maxVerifyBody)
		} else {
			data, err = s.gw.Raw(ctx, name)
		}
		if errors.Is(err, errTooLarge) {
			return nil, httpErr(http.StatusRequestEntityTooLarge, "Attestation %s holds more than %d bytes of result", name, maxVerifyBody)
		}
		if err != nil {
			return nil, fmt.Errorf("cu: read attestation %s: %w", name, err)
		}
		tags = func(n string) (string, bool) { return tagValue(tx.Tags, n) }
		id, owner = tx.ID, tx.Owner
	default:
		return nil, httpErr(http.StatusBadRequest, "The request item must carry the attestation item as its data, or its id in an Attestation tag")
	}
	a := &attested{id: id, owner: owner}
	get := func(n string) string { v, _ := tags(n); return v }
	if get("Data-Protocol") != "ao" || get("Type") != "Attestation" {
		return nil, httpErr(http.StatusBadRequest, "Item %s is not an attestation (Data-Protocol: ao, Type: Attestation)", id)
	}
	a.pid, a.msg, a.cron = get("Process"), get("Message"), get("Cron")
	a.resultSHA, a.memorySHA = get("Result-SHA-256"), get("Memory-SHA-256")
	var ok1, ok2 bool
	a.slot, ok1 = jsParseInt(get("Slot"))
	a.ts, ok2 = jsParseInt(get("Timestamp"))
	switch {
	case !isID(a.pid):
		return nil, httpErr(http.StatusBadRequest, "Attestation %s has no valid Process tag", id)
	case !ok1 || !ok2 || a.slot < 0:
		return nil, httpErr(http.StatusBadRequest, "Attestation %s has no valid Slot and Timestamp tags", id)
	case a.cron == "" && !isID(a.msg):
		return nil, httpErr(http.StatusBadRequest, "Attestation %s names no Message (nor a Cron)", id)
	case len(a.resultSHA) != 64 || len(a.memorySHA) != 64:
		return nil, httpErr(http.StatusBadRequest, "Attestation %s has no Result-SHA-256 and Memory-SHA-256 digests", id)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != a.resultSHA {
		return nil, httpErr(http.StatusBadRequest, "Attestation %s is inconsistent: its data does not hash to its Result-SHA-256", id)
	}
	return a, nil
}

// ownAttestation evaluates what a attests, here, and returns this CU's
// digests of it.
func (s *Server) ownAttestation(ctx context.Context, a *attested) (*attestRow, error) {
	if a.cron == "" {
		if _, err := s.Result(ctx, a.pid, a.msg); err != nil {
			return nil, err
		}
		mine, err := s.store.attestAtSlot(ctx, a.pid, a.slot)
		if err != nil {
			return nil, err
		}
		if mine == nil {
			// Evaluated before attestations were kept: evaluate it again on
			// the side, which stores its digests.
			p, err := s.process(ctx, a.pid)
			if err != nil {
				return nil, err
			}
			tp, err := s.evaluatePast(ctx, p, evalOptions{to: itoa(a.ts), tgt: target{ts: a.ts, nonce: a.slot}})
			if err != nil {
				return nil, err
			}
			tp.inst.Close(context.WithoutCancel(ctx))
			if mine, err = s.store.attestAtSlot(ctx, a.pid, a.slot); err != nil {
				return nil, err
			}
		}
		if mine == nil {
			return nil, httpErr(http.StatusNotFound, "Slot %d of process %s is not in its schedule on this CU's SU", a.slot, a.pid)
		}
		return mine, nil
	}
	p, err := s.process(ctx, a.pid)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx, p, evalOptions{to: itoa(a.ts), cronUpto: a.ts, tgt: target{ts: a.ts, nonce: -1}}); err != nil {
		return nil, err
	}
	mine, err := s.store.attestAt(ctx, a.pid, a.ts, a.slot, a.cron)
	if err != nil {
		return nil, err
	}
	if mine == nil {
		return nil, httpErr(http.StatusNotFound, "This CU has no cron evaluation %s at %d after slot %d of process %s (it may have been evaluated before attestations were kept)", a.cron, a.ts, a.slot, a.pid)
	}
	return mine, nil
}
