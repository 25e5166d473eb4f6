package cu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aonode/aonode/ans104"
)

// An attestation is the CU's signed statement of one evaluation: an ANS-104
// item with the tags below and, as data, the result in canonical JSON
// (canonical.go), so that Result-SHA-256 is the SHA-256 of the item's data.
// The digests are computed as each message is evaluated (the memory digest
// incrementally, digest.go); the item is signed when first asked for (GET
// /attestation, the ao-attestation header of /result) or, with
// PublishAttestations, by a background publisher soon after evaluation, and
// then stored: an RSA
// wallet's signature is not deterministic, so its attestations are signed
// once; an Ed25519 wallet signs the same item every time, so its items are
// signed again rather than stored, unless they are published.

// attestFields computes what an attestation states about res, the result p
// just produced (p.mu held; p.inst holds the memory after the message).
func (s *Server) attestFields(p *proc, res evalResult, nonce int64, assignment, hashChain string) (*attestRow, error) {
	if s.cfg.NoAttestations || p.dry {
		return nil, nil
	}
	rs, err := ResultDigest(res.json)
	if err != nil {
		return nil, fmt.Errorf("cu: result digest: %w", err)
	}
	var ms string
	err = p.inst.Live(func(mem []byte, untouched []bool) error {
		ms = p.digest.sum(mem, untouched)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cu: memory digest: %w", err)
	}
	return &attestRow{Nonce: nonce, Assignment: assignment, HashChain: hashChain,
		ResultSHA: rs, MemorySHA: ms, Fuel: res.fuel, Gas: res.gas}, nil
}

// Attestation is the JSON view of an attestation item.
type Attestation struct {
	ID            string `json:"id"`
	Owner         string `json:"owner"` // the CU's wallet address
	Process       string `json:"process"`
	Message       string `json:"message,omitempty"`
	Cron          string `json:"cron,omitempty"`
	Slot          int64  `json:"slot"`
	Assignment    string `json:"assignment,omitempty"`
	HashChain     string `json:"hashChain,omitempty"`
	Module        string `json:"module"`
	Timestamp     int64  `json:"timestamp"`
	ResultSHA256  string `json:"resultSha256"`
	MemorySHA256  string `json:"memorySha256"`
	GasUsed       uint64 `json:"gasUsed"`
	FuelUsed      uint64 `json:"fuelUsed"`
	FuelLimit     int64  `json:"fuelLimit"`
	SignatureType int    `json:"signatureType"`
}

// Attest returns the signed attestation of msgID's evaluation in pid
// (evaluating it first if needed). msgID may also be an assignment id, as
// for Result.
func (s *Server) Attest(ctx context.Context, pid, msgID string) ([]byte, *Attestation, error) {
	if s.cfg.NoAttestations {
		return nil, nil, httpErr(http.StatusNotFound, "This CU does not attest its results (it runs with attestations off)")
	}
	a, err := s.store.attestByMessage(ctx, pid, msgID)
	if err != nil {
		return nil, nil, err
	}
	if a == nil {
		if _, err := s.Result(ctx, pid, msgID); err != nil {
			return nil, nil, err
		}
		if a, err = s.store.attestByMessage(ctx, pid, msgID); err != nil {
			return nil, nil, err
		}
		if a == nil {
			// By assignment id: find the slot the assignment names.
			if m, err := s.sched.Message(ctx, pid, msgID); err == nil {
				if v, ok := tagValue(m.Assignment.Tags, "Nonce"); ok {
					if n, ok := jsParseInt(v); ok {
						a, err = s.store.attestAtSlot(ctx, pid, n)
						if err != nil {
							return nil, nil, err
						}
					}
				}
			}
		}
		if a == nil {
			return nil, nil, httpErr(http.StatusNotFound, "No attestation for message %s of process %s: it was evaluated before this CU kept attestations", msgID, pid)
		}
	}
	return s.signed(ctx, a)
}

// deterministic reports whether signer signs the same message the same way
// (Ed25519), so an attestation need not be stored once signed.
func deterministic(signer ans104.Signer) bool { return signer.Type() == ans104.TypeEd25519 }

// signed returns a's item, signing it on first use and storing it unless
// the signature is deterministic.
func (s *Server) signed(ctx context.Context, a *attestRow) ([]byte, *Attestation, error) {
	p, err := s.process(ctx, a.Process)
	if err != nil {
		return nil, nil, err
	}
	if a.ItemID == "" {
		item, err := s.attestationItem(ctx, p, a)
		if err != nil {
			return nil, nil, err
		}
		if deterministic(s.signer) && !s.cfg.PublishAttestations {
			// Signing again gives the same item (and id): nothing to store.
			a.ItemID, a.Item = item.ID(), item.Bytes()
			return a.Item, s.attestationView(p, a), nil
		}
		id, b, err := s.store.setAttestItem(context.WithoutCancel(ctx), a, item.ID(), item.Bytes())
		if err != nil {
			return nil, nil, err
		}
		a.ItemID, a.Item = id, b
		s.metrics.attestationsSigned.Add(1)
	}
	return a.Item, s.attestationView(p, a), nil
}

func (s *Server) attestationView(p *proc, a *attestRow) *Attestation {
	v := &Attestation{ID: a.ItemID, Owner: s.cfg.Address, Process: a.Process, Message: a.MessageID, Cron: a.Cron,
		Slot: a.Ordinate, Assignment: a.Assignment, HashChain: a.HashChain, Module: p.info.moduleID, Timestamp: a.Timestamp,
		ResultSHA256: a.ResultSHA, MemorySHA256: a.MemorySHA, GasUsed: a.Gas, FuelUsed: a.Fuel, FuelLimit: s.cfg.MessageFuel}
	if s.signer != nil {
		v.SignatureType = int(s.signer.Type())
	}
	return v
}

// attestationItem builds and signs the item of a.
func (s *Server) attestationItem(ctx context.Context, p *proc, a *attestRow) (*ans104.DataItem, error) {
	if s.signer == nil {
		return nil, httpErr(http.StatusServiceUnavailable, "This CU has no wallet to sign attestations with")
	}
	res, ok, err := s.store.resultAt(ctx, a.Process, a.Timestamp, a.Ordinate)
	if a.Cron != "" {
		res, ok, err = s.store.cronResult(ctx, a.Process, a.Timestamp, a.Ordinate, a.Cron)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, httpErr(http.StatusNotFound, "No stored result for slot %d of process %s", a.Ordinate, a.Process)
	}
	data, err := Canonical(res)
	if err != nil {
		return nil, fmt.Errorf("cu: attestation: %w", err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != a.ResultSHA {
		// The stored result is not the one the digest was taken of (a
		// re-evaluation is being stored): ask again.
		return nil, httpErr(http.StatusServiceUnavailable, "The result of slot %d of process %s is being stored again; retry", a.Ordinate, a.Process)
	}
	tags := []ans104.Tag{
		{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Attestation"},
		{Name: "Process", Value: a.Process},
	}
	if a.Cron == "" {
		tags = append(tags, ans104.Tag{Name: "Message", Value: a.MessageID})
	} else {
		tags = append(tags, ans104.Tag{Name: "Cron", Value: a.Cron})
	}
	tags = append(tags, ans104.Tag{Name: "Slot", Value: itoa(a.Ordinate)})
	if a.Assignment != "" {
		tags = append(tags, ans104.Tag{Name: "Assignment", Value: a.Assignment}, ans104.Tag{Name: "Hash-Chain", Value: a.HashChain})
	}
	tags = append(tags,
		ans104.Tag{Name: "Module", Value: p.info.moduleID},
		ans104.Tag{Name: "Timestamp", Value: itoa(a.Timestamp)},
		ans104.Tag{Name: "Result-SHA-256", Value: a.ResultSHA},
		ans104.Tag{Name: "Memory-SHA-256", Value: a.MemorySHA},
		ans104.Tag{Name: "Gas-Used", Value: strconv.FormatUint(a.Gas, 10)},
		ans104.Tag{Name: "Fuel-Used", Value: strconv.FormatUint(a.Fuel, 10)},
		ans104.Tag{Name: "Fuel-Limit", Value: itoa(s.cfg.MessageFuel)},
		ans104.Tag{Name: "Content-Type", Value: "application/json"},
	)
	it, err := ans104.Sign(s.signer, data, ans104.Options{Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("cu: sign attestation: %w", err)
	}
	return it, nil
}

// attestationID is the id of the attestation of msgID in pid, signing it if
// needed; "" when there is none (attestations off, a result stored before
// attestations). It never evaluates.
func (s *Server) attestationID(ctx context.Context, pid, msgID string) string {
	if s.cfg.NoAttestations || s.signer == nil {
		return ""
	}
	a, err := s.store.attestByMessage(ctx, pid, msgID)
	if err != nil || a == nil {
		return ""
	}
	if a.ItemID != "" {
		return a.ItemID
	}
	if _, v, err := s.signed(ctx, a); err == nil {
		return v.ID
	}
	return ""
}

// publishAttestations signs and uploads attestations in the background,
// oldest first, until Close; a failed upload is retried after a pause.
func (s *Server) publishAttestations() {
	defer s.bg.Done()
	wait := 200 * time.Millisecond
	for {
		select {
		case <-s.refreshStop:
			return
		case <-s.attestQ:
		case <-time.After(wait):
		}
		n, err := s.publishSome(s.ctx)
		switch {
		case err != nil && s.ctx.Err() == nil:
			s.log.Warn("publishing attestations failed; retrying", "err", err)
			wait = min(2*wait, 10*time.Second)
		case n > 0:
			wait = 0 // more may be waiting
		default:
			wait = time.Second
		}
	}
}

// publishSome signs and uploads up to a batch of attestations.
func (s *Server) publishSome(ctx context.Context) (int, error) {
	todo, err := s.store.unsignedAttests(ctx, 64)
	if err != nil {
		return 0, err
	}
	for _, a := range todo {
		if _, _, err := s.signed(ctx, a); err != nil {
			var he *HTTPError
			if ctx.Err() != nil || errors.As(err, &he) && he.Code == http.StatusServiceUnavailable {
				continue // (being stored again, or shutting down) next round
			}
			// This one cannot be signed (its process no longer loads, its
			// result is gone): set it aside rather than block the rest.
			s.log.Warn("an attestation cannot be signed; not publishing it", "process", a.Process, "slot", a.Ordinate, "cron", a.Cron, "err", err)
			if err := s.store.markUnsignable(ctx, a); err != nil {
				return 0, err
			}
		}
	}
	up, err := s.store.unpublishedAttests(ctx, 64)
	if err != nil {
		return 0, err
	}
	for _, a := range up {
		if err := s.gw.Upload(ctx, a.Item); err != nil {
			return 0, fmt.Errorf("upload attestation %s: %w", a.ItemID, err)
		}
		if err := s.store.markPublished(ctx, a.ItemID); err != nil {
			return 0, err
		}
		s.metrics.attestationsPublished.Add(1)
	}
	return len(todo) + len(up), nil
}

// publishPrices uploads the CU's signed price record (Type: Compute-Price),
// which clients find by GraphQL as they find a Scheduler-Location.
func (s *Server) publishPrices(ctx context.Context) error {
	if s.cfg.PublicURL == "" {
		return errors.New("cu: publishing prices needs the CU's public URL (Config.PublicURL, --public-url)")
	}
	item, err := s.PriceRecord()
	if err != nil {
		return err
	}
	if err := s.gw.Upload(ctx, item.Bytes()); err != nil {
		return fmt.Errorf("cu: publish price record: %w", err)
	}
	s.log.Info("price record published", "id", item.ID(), "url", s.cfg.PublicURL)
	return nil
}

// PriceRecord is the CU's signed price record.
func (s *Server) PriceRecord() (*ans104.DataItem, error) {
	if s.signer == nil {
		return nil, errors.New("cu: a price record needs the CU wallet")
	}
	pr := s.cfg.Prices
	tags := []ans104.Tag{
		{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Compute-Price"},
		{Name: "Url", Value: s.cfg.PublicURL},
		{Name: "Price-Message", Value: itoa(pr.Message)}, {Name: "Price-Gigafuel", Value: itoa(pr.Gigafuel)},
		{Name: "Price-Verification", Value: itoa(pr.Verification)}, {Name: "Price-Dry-Run", Value: itoa(pr.DryRun)},
	}
	if s.cfg.Ledger != "" {
		tags = append(tags, ans104.Tag{Name: "Token", Value: s.cfg.Ledger})
	}
	tags = append(tags, ans104.Tag{Name: "Time-To-Live", Value: itoa(s.cfg.PriceTTL.Milliseconds())})
	it, err := ans104.Sign(s.signer, []byte(fmt.Sprint(time.Now().UnixMilli())), ans104.Options{Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("cu: sign price record: %w", err)
	}
	return it, nil
}

// priceInfo is the prices part of GET /.
func (s *Server) priceInfo() obj {
	pr := s.cfg.Prices
	if !pr.On() {
		pr = Prices{}
	}
	return obj{{"token", s.cfg.Ledger}, {"message", itoa(pr.Message)}, {"gigafuel", itoa(pr.Gigafuel)},
		{"verification", itoa(pr.Verification)}, {"dryRun", itoa(pr.DryRun)}}
}
