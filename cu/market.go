package cu

import (
	"context"

	"encoding/json"
	"errors"
	"fmt"
	"github.com/aonode/aonode/ans104"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Prices are what a CU asks, in the smallest unit of its ledger's token. All
// zero (the default) means the CU is free: nothing is metered against a
// balance and no request is ever refused for money.
type Prices struct {
	// Message is charged per evaluated message (scheduled or cron).
	Message int64
	// Gigafuel is charged per 1e9 units of the message's fuel (the
	// deterministic instruction count of wasm.Config.FuelLimit), rounded up.
	Gigafuel int64
	// Verification is charged per POST /verify, to the signer of the request.
	Verification int64
	// DryRun is charged per dry-run, to the process owner.
	DryRun int64
}

// On reports whether any price is set.
func (p Prices) On() bool {
	return p.Message > 0 || p.Gigafuel > 0 || p.Verification > 0 || p.DryRun > 0
}

// messageCost is what a message that burnt fuel costs.
func (p Prices) messageCost(fuel uint64) int64 {
	hi, lo := bits.Mul64(fuel, uint64(max(p.Gigafuel, 0)))
	if hi >= 1e9 {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, 1e9)
	if r > 0 {
		q++
	}
	if q > math.MaxInt64-uint64(p.Message) {
		return math.MaxInt64
	}
	return p.Message + int64(q)
}

// PaymentError refuses work that the payer's balance does not cover: HTTP
// 402, as HyperBEAM's p4 answers ("Insufficient funds", with price and
// balance). The work is not lost: nothing was stored for it, and a later
// request after a payment does it.
type PaymentError struct {
	Payer   string
	Price   int64
	Balance int64
	Token   string
}

func (e *PaymentError) Error() string {
	return fmt.Sprintf("Insufficient funds: %s has a balance of %d on this CU and the work costs %d; pay with a Transfer of the token %s to this CU's wallet",
		e.Payer, e.Balance, e.Price, e.Token)
}

func writePaymentError(w http.ResponseWriter, e *PaymentError) {
	w.Header().Set("price", strconv.FormatInt(e.Price, 10))
	w.Header().Set("balance", strconv.FormatInt(e.Balance, 10))
	writeJSON(w, http.StatusPaymentRequired, obj{{"error", e.Error()}, {"price", strconv.FormatInt(e.Price, 10)},
		{"balance", strconv.FormatInt(e.Balance, 10)}, {"payer", e.Payer}, {"token", e.Token}})
}

// market is the CU's view of balances: what the store says plus the charges
// of evaluations not yet flushed to it.
type market struct {
	mu      sync.Mutex
	stored  map[string]int64 // address → balance in the store (loaded on use)
	pending map[string]int64 // address → charges made (or reserved) but not yet stored
	// gen counts invalidations: a balance read from the store is cached
	// only if none happened while it was read, or it could miss a charge.
	gen uint64

	seq       atomic.Int64 // makes dry-run charge refs unique
	syncMu    sync.Mutex   // one ledger scan at a time
	syncBegan time.Time
	syncErr   error // of the last scan, for the callers that shared it
}

// release ends a pending charge of address, now stored or dropped, and
// drops its cached balance (m.mu held).
func (m *market) release(address string, amount int64) {
	m.pending[address] -= amount
	if m.pending[address] == 0 {
		delete(m.pending, address)
	}
	m.invalidate(address)
}

// invalidate drops address's cached balance (m.mu held).
func (m *market) invalidate(address string) {
	delete(m.stored, address)
	m.gen++
}

// pricing reports whether work is metered and charged.
func (s *Server) pricing() bool { return s.cfg.Prices.On() }

// exempt reports whether p is evaluated for free even with pricing on: the
// ledger process, which the CU evaluates for itself to learn of payments.
func (s *Server) exempt(p *proc) bool { return p.info.pid == s.cfg.Ledger }

// Balance is what address can spend on this CU.
func (s *Server) Balance(ctx context.Context, address string) (int64, error) {
	s.mkt.mu.Lock()
	b, ok := s.mkt.stored[address]
	pend, gen := s.mkt.pending[address], s.mkt.gen
	s.mkt.mu.Unlock()
	if !ok {
		credited, charged, err := s.store.balance(ctx, address)
		if err != nil {
			return 0, err
		}
		b = credited - charged
		s.mkt.mu.Lock()
		if s.mkt.gen == gen {
			s.mkt.stored[address] = b
		}
		pend = s.mkt.pending[address]
		s.mkt.mu.Unlock()
	}
	return b - pend, nil
}

// afford checks that payer can pay price, reading the ledger once more
// before refusing (a payment may just have been made).
func (s *Server) afford(ctx context.Context, payer string, price int64) error {
	price = max(price, 1)
	bal, err := s.Balance(ctx, payer)
	if err != nil {
		return err
	}
	if bal >= price {
		return nil
	}
	// Before refusing, the ledger is read again: a payment may just have
	// been made. Refusals that come while a scan runs share it; a scan
	// with nothing new on the ledger costs one SU request.
	if s.cfg.Ledger != "" {
		if err := s.syncLedger(ctx); err != nil {
			s.log.Warn("reading the ledger for payments failed", "ledger", s.cfg.Ledger, "err", err)
		}
		if bal, err = s.Balance(ctx, payer); err != nil {
			return err
		}
		if bal >= price {
			return nil
		}
	}
	s.metrics.refusedUnpaid.Add(1)
	return &PaymentError{Payer: payer, Price: price, Balance: bal, Token: s.cfg.Ledger}
}

// debit records a charge not yet stored.
func (s *Server) debit(payer string, amount int64) {
	s.mkt.mu.Lock()
	s.mkt.pending[payer] += amount
	s.mkt.mu.Unlock()
}

// settled is called once charges are stored (or dropped): they are no longer
// pending, and the stored balance is read again, since the store ignores a
// charge made twice (a replay).
func (s *Server) settled(rows []evalRow) {
	s.mkt.mu.Lock()
	defer s.mkt.mu.Unlock()
	for _, e := range rows {
		if c := e.Charge; c != nil {
			s.mkt.release(c.Payer, c.Amount)
		}
	}
}

// reserve checks that payer can pay price for work that is not an
// evaluation (a dry-run, a verification) and holds the amount until done is
// called with the charge to store (nil: the work failed, nothing is
// charged), so that concurrent requests cannot all spend one balance.
func (s *Server) reserve(ctx context.Context, payer string, price int64) (done func(ctx context.Context, c *chargeRow) error, err error) {
	if err := s.afford(ctx, payer, price); err != nil {
		return nil, err
	}
	s.debit(payer, price)
	return func(ctx context.Context, c *chargeRow) error {
		var err error
		if c != nil {
			err = s.store.charge(context.WithoutCancel(ctx), *c)
			if err == nil {
				s.metrics.charged.Add(c.Amount)
			}
		}
		s.mkt.mu.Lock()
		s.mkt.release(payer, price)
		s.mkt.mu.Unlock()
		return err
	}, nil
}

// syncLedger evaluates the ledger process to its latest message and credits
// every payment it made to this CU: a Credit-Notice message the ledger sends
// to the CU's wallet (what the aos token blueprint sends the Recipient of a
// Transfer), with the payer in Sender and the amount in Quantity. Nothing
// but the ledger's own evaluation, done here, is trusted. Callers that wait
// while a scan runs share the next one.
func (s *Server) syncLedger(ctx context.Context) error {
	ledger := s.cfg.Ledger
	if ledger == "" {
		return nil
	}
	asked := time.Now()
	s.mkt.syncMu.Lock()
	defer s.mkt.syncMu.Unlock()
	if s.mkt.syncBegan.After(asked) {
		return s.mkt.syncErr // a scan that began after this call was asked for has run
	}
	s.mkt.syncBegan = time.Now()
	err := s.scanLedger(ctx, ledger)
	s.mkt.syncErr = err
	return err
}

// scanLedger is syncLedger's scan (s.mkt.syncMu held).
func (s *Server) scanLedger(ctx context.Context, ledger string) error {
	p, err := s.process(ctx, ledger)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", ledger, err)
	}
	if err := s.run(ctx, p, evalOptions{}); err != nil {
		return fmt.Errorf("ledger %s: %w", ledger, err)
	}
	cur, err := s.store.ledgerCursor(ctx, ledger)
	if err != nil {
		return err
	}
	for {
		rows, more, err := s.store.evals(ctx, rangeQuery{Process: ledger, Lo: cur, Limit: 500})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		var cs []credit
		for _, r := range rows {
			cs = append(cs, s.creditsIn(ledger, r)...)
		}
		last := rows[len(rows)-1]
		cur = &Cursor{Timestamp: last.Timestamp, Ordinate: last.Ordinate, Cron: last.Cron}
		if err := s.store.putCredits(context.WithoutCancel(ctx), ledger, *cur, cs); err != nil {
			return err
		}
		s.mkt.mu.Lock()
		for _, c := range cs {
			s.mkt.invalidate(c.Address)
			s.metrics.credited.Add(c.Amount)
		}
		s.mkt.mu.Unlock()
		if !more {
			return nil
		}
	}
}

// creditsIn reads the payments to this CU in one ledger result.
func (s *Server) creditsIn(ledger string, r evalRow) []credit {
	var res struct {
		Messages []struct {
			Target string `json:"Target"`
			Tags   []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"Tags"`
		} `json:"Messages"`
	}
	if json.Unmarshal(r.Result, &res) != nil {
		return nil
	}
	var out []credit
	for i, m := range res.Messages {
		if m.Target != s.cfg.Address {
			continue
		}
		var action, sender, qty string
		for _, t := range m.Tags {
			switch t.Name {
			case "Action":
				action = t.Value
			case "Sender":
				sender = t.Value
			case "Quantity":
				qty = t.Value
			}
		}
		amount, err := strconv.ParseInt(qty, 10, 64)
		if action != "Credit-Notice" || sender == "" || err != nil || amount <= 0 {
			continue
		}
		out = append(out, credit{Ref: fmt.Sprintf("%s/%d/%d/%s/%d", ledger, r.Timestamp, r.Ordinate, r.Cron, i), Address: sender, Amount: amount})
	}
	return out
}

// watchLedger reads payments every interval, so balances grow without a
// request having to ask.
func (s *Server) watchLedger(every time.Duration) {
	defer s.bg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.refreshStop:
			return
		case <-t.C:
			if err := s.syncLedger(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("reading the ledger for payments failed", "ledger", s.cfg.Ledger, "err", err)
			}
		}
	}
}

type payerKey struct{}

// withPayer makes payer pay for the messages evaluated under ctx: a
// verification pays for the evaluation it causes.
func withPayer(ctx context.Context, payer string) context.Context {
	return context.WithValue(ctx, payerKey{}, payer)
}

// payerOf is who pays for evaluating p's messages under ctx: the process
// owner, unless the evaluation is a verification's.
func payerOf(ctx context.Context, p *proc) string {
	if v, ok := ctx.Value(payerKey{}).(string); ok && v != "" {
		return v
	}
	return p.info.owner
}

// charge prices an evaluated message for its payer (payerOf), and records
// the debit until the row is stored.
func (s *Server) charge(ctx context.Context, p *proc, ref string, res evalResult, wall time.Duration) *chargeRow {
	if !s.pricing() || s.exempt(p) {
		return nil
	}
	c := &chargeRow{Payer: payerOf(ctx, p), Process: p.info.pid, Kind: "message", Ref: ref,
		Amount: s.cfg.Prices.messageCost(res.fuel), Messages: 1, Fuel: res.fuel, Wall: wall, Memory: p.size}
	s.debit(c.Payer, c.Amount)
	return c
}

// Quote is what a request would cost before it is made.
type Quote struct {
	Kind     string `json:"kind"`
	Process  string `json:"process,omitempty"`
	Payer    string `json:"payer,omitempty"`
	Messages int64  `json:"messages"`
	Price    string `json:"price"`
	Balance  string `json:"balance"`
	Token    string `json:"token"`
	// Estimate is true when the price depends on fuel not yet burnt; it is
	// then the messages times the message price and the process's average
	// fuel so far.
	Estimate bool `json:"estimate"`
}

// Quote prices a result (the messages up to msgID not yet evaluated), a
// dry-run or a verification of pid.
func (s *Server) Quote(ctx context.Context, kind, pid, msgID, payer string) (*Quote, error) {
	q := &Quote{Kind: kind, Process: pid, Token: s.cfg.Ledger, Price: "0", Balance: "0"}
	switch kind {
	case "result", "":
		q.Kind = "result"
		p, err := s.process(ctx, pid)
		if err != nil {
			return nil, err
		}
		q.Payer = p.info.owner
		if !s.pricing() || s.exempt(p) {
			break
		}
		n := int64(1)
		if msgID != "" {
			if _, ok, err := s.store.resultByMessage(ctx, pid, msgID); err != nil {
				return nil, err
			} else if ok {
				n = 0
			} else if m, err := s.sched.Message(ctx, pid, msgID); err == nil {
				if v, ok := tagValue(m.Assignment.Tags, "Nonce"); ok {
					if nonce, ok := jsParseInt(v); ok {
						// From the results stored, not the live position:
						// a quote never waits for an evaluation.
						last, err := s.store.lastNonce(ctx, pid)
						if err != nil {
							return nil, err
						}
						n = max(nonce-last, 1)
					}
				}
			} else if errors.Is(err, ErrNotFound) {
				return nil, httpErr(http.StatusNotFound, "Message %s not found for process %s", msgID, pid)
			} else {
				return nil, err
			}
		}
		avg, err := s.store.averageFuel(ctx, pid)
		if err != nil {
			return nil, err
		}
		q.Messages = n
		q.Price = strconv.FormatInt(satMul(n, s.cfg.Prices.messageCost(avg)), 10)
		q.Estimate = n > 0 && s.cfg.Prices.Gigafuel > 0
	case "dry-run":
		p, err := s.process(ctx, pid)
		if err != nil {
			return nil, err
		}
		q.Payer = p.info.owner
		if s.pricing() && !s.exempt(p) {
			q.Price = strconv.FormatInt(s.cfg.Prices.DryRun, 10)
		}
	case "verify":
		q.Payer = payer
		q.Price = strconv.FormatInt(s.cfg.Prices.Verification, 10)
		if !s.pricing() {
			q.Price = "0"
		}
	default:
		return nil, httpErr(http.StatusBadRequest, "kind must be result, dry-run or verify, not %q", kind)
	}
	if q.Payer != "" {
		b, err := s.Balance(ctx, q.Payer)
		if err != nil {
			return nil, err
		}
		q.Balance = strconv.FormatInt(b, 10)
	}
	return q, nil
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// isID reports whether s is an Arweave id (43 base64url characters).
func isID(s string) bool {
	_, err := ans104.DecodeID(s)
	return err == nil
}

// dryRunPayer checks, with pricing on, that pid's owner can pay for a
// dry-run, holds the price, and returns what to call once the dry-run is
// answered (ok) or failed (!ok). The owner pays for reads of their process:
// a dry-run is unsigned, so nobody else can be charged; --dry-run-rate-limit
// bounds what one client can spend.
func (s *Server) dryRunPayer(ctx context.Context, pid string) (func(ctx context.Context, ok bool) error, error) {
	if !s.pricing() || s.cfg.Prices.DryRun == 0 || pid == s.cfg.Ledger {
		return func(context.Context, bool) error { return nil }, nil
	}
	p, err := s.process(ctx, pid)
	if err != nil {
		return nil, err
	}
	done, err := s.reserve(ctx, p.info.owner, s.cfg.Prices.DryRun)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, ok bool) error {
		if !ok {
			return done(ctx, nil)
		}
		ref := fmt.Sprintf("%d-%d", time.Now().UnixNano(), s.mkt.seq.Add(1))
		return done(ctx, &chargeRow{Payer: p.info.owner, Process: pid, Kind: "dry-run", Ref: ref, Amount: s.cfg.Prices.DryRun, Messages: 1})
	}, nil
}

// wantsJSON reports whether the client asked for JSON.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}
