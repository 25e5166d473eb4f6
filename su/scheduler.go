package su

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aonode/aonode/ans104"
)

// InputError is a request the SU refuses (HTTP 400 {"error": …}).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErr(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// ErrRetry is returned (wrapped) when a request was not scheduled because of a
// storage failure; nothing about it was acknowledged and it can be sent again.
var ErrRetry = errors.New("su: not scheduled (storage failure), retry")

// ErrUnavailable is returned (wrapped) when a request was not scheduled
// because the gateway could not be asked about it (down, or 5xx): not the
// caller's fault, so it is answered 503, which an MU retries, not 400, which
// an MU takes for a refusal no retry can change.
var ErrUnavailable = errors.New("su: the gateway could not be asked; retry")

// ErrClosed is returned once the scheduler is shutting down.
var ErrClosed = errors.New("su: scheduler closed")

// Receipt tells what was scheduled (or found already scheduled).
type Receipt struct {
	ID           string // what POST / answers: process id, message id, or the assignment id of an assign
	ProcessID    string
	Nonce        int64 // -1 for a legacy process, which has no slot
	AssignmentID string
	Timestamp    int64 // the assignment's Timestamp tag
	BlockHeight  string
	Existing     bool // it had been scheduled before this request
}

// SchedulerConfig configures the core scheduler.
type SchedulerConfig struct {
	Signer ans104.Signer // the SU wallet
	Store  Store
	// Height returns the current block height for Block-Height tags.
	Height func() int64
	// Legacy disables AOP-6: processes get no assignment and their first message is nonce 0.
	Legacy bool
	// Exists reports whether a transaction exists in the permanent store, for
	// assignments; nil accepts any id. BaseLayerStatus is used with base-layer.
	Exists          func(ctx context.Context, id string) (bool, error)
	BaseLayerStatus func(ctx context.Context, id string) (TxStatus, error)
	// OnCommit is called after every successful commit (it wakes the publisher).
	OnCommit func()
	Logger   *slog.Logger
	Metrics  *Metrics
	// MaxBatch bounds the items signed per process between checks, and the
	// items per group commit (defaults 512 and 4096).
	MaxBatch, MaxCommit int
	// Now returns Unix milliseconds (tests); default wall clock.
	Now func() int64
}

// Scheduler assigns nonces, timestamps, block heights and hash-chain links,
// signs assignments and group-commits them. It is safe for concurrent use:
// different processes schedule in parallel; each process has one signer
// goroutine, and one committer goroutine writes everything in batches.
type Scheduler struct {
	cfg    SchedulerConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	procs map[string]*proc

	commitCh chan *job

	// At most one signature per core is computed at a time: with more, the
	// signers of busy processes only preempt one another (the SU's wallet
	// signs in process; a remote signer that waited on a network would want
	// more tokens than cores). wanting counts the signers holding or waiting
	// for a token: more than there are tokens means that signing saturates
	// the CPU. signNanos is a moving average of the time a signature takes.
	signSem   chan struct{}
	wanting   atomic.Int64
	signNanos atomic.Int64
}

const (
	kindProcess = iota
	kindMessage
	kindAssign
)

type request struct {
	kind    int
	pid     string
	key     string // dedupe key: the process, message or assigned tx id
	item    *ans104.DataItem
	exclude []string
	reply   chan result
}

type result struct {
	r   *Receipt
	err error
}

// head is the end of a process's schedule as far as the signer knows.
type head struct {
	loaded  bool
	exists  bool
	legacy  bool
	next    int64 // next nonce
	epoch   int64
	hasPrev bool
	prevAID [32]byte
	prevHC  [32]byte
	ts      int64 // last timestamp
}

// pending is an item signed but not yet committed; duplicates wait on it.
type pending struct {
	done chan struct{}
	r    *Receipt
	err  error
}

type proc struct {
	id   string
	reqs chan *request
	refs int // requests in flight, guarded by Scheduler.mu

	head    head // owned by the signer goroutine
	seenGen uint64

	mu        sync.Mutex
	gen       uint64 // bumped when a commit fails: signed-but-uncommitted work is void
	committed head
	inflight  map[string]*pending
}

type job struct {
	p       *proc
	gen     uint64
	key     string
	process *ProcessRecord
	slot    *SlotRecord
	outbox  []OutboxItem
	after   head
	receipt *Receipt
	pend    *pending
	req     *request
	size    int
}

// NewScheduler starts a scheduler; Close stops it.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Signer == nil || cfg.Store == nil {
		return nil, errors.New("su: scheduler needs a signer and a store")
	}
	if cfg.Height == nil {
		cfg.Height = func() int64 { return 0 }
	}
	if cfg.Now == nil {
		cfg.Now = func() int64 { return time.Now().UnixMilli() }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.MaxCommit <= 0 {
		cfg.MaxCommit = 4096
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{cfg: cfg, ctx: ctx, cancel: cancel, procs: make(map[string]*proc), commitCh: make(chan *job, 2*cfg.MaxCommit)}
	s.signSem = make(chan struct{}, runtime.GOMAXPROCS(0))
	s.wg.Add(1)
	go s.commitLoop()
	return s, nil
}

// Close stops the scheduler. Requests not yet committed fail with ErrClosed;
// nothing acknowledged is affected.
func (s *Scheduler) Close() {
	s.cancel()
	s.wg.Wait()
}

// Submit verifies and schedules a posted data item: a Process (which becomes
// nonce 0 under AOP-6) or a Message (scheduled on its target). A message already
// scheduled on its process is not scheduled again; its receipt comes back with
// Existing set.
func (s *Scheduler) Submit(ctx context.Context, raw []byte) (*Receipt, error) {
	item, err := ans104.Parse(raw)
	if err != nil {
		return nil, inputErr("Invalid data item: %v", err)
	}
	if err := item.Verify(); err != nil {
		return nil, inputErr("Data item %s does not verify: %v", item.ID(), err)
	}
	if err := item.CheckStrict(); err != nil {
		return nil, inputErr("Data item %s is not canonical: %v", item.ID(), err)
	}
	typ, ok := item.Tag("Type")
	if !ok {
		typ, ok = item.Tag("type")
	}
	if !ok {
		return nil, inputErr("Type tag not present")
	}
	if typ != "Process" && typ != "Message" {
		return nil, inputErr("Unsupported Type tag value")
	}
	if _, ok := item.Tag("Data-Protocol"); !ok {
		if _, ok := item.Tag("data-protocol"); !ok {
			return nil, inputErr("Data-Protocol tag not present")
		}
	}
	for _, t := range item.Tags {
		if strings.HasSuffix(t.Name, "+link") || strings.HasSuffix(t.Value, "+link") {
			return nil, inputErr("Tag %s cannot contain +link", t.Name)
		}
	}
	req := &request{item: item, key: item.ID()}
	if typ == "Process" {
		_, mod := item.Tag("Module")
		_, sched := item.Tag("Scheduler")
		if !mod || !sched {
			return nil, inputErr("Required Module and Scheduler tags for Process type not present")
		}
		req.kind, req.pid = kindProcess, req.key
	} else {
		if item.Target == nil {
			return nil, inputErr("Message %s has no target process", req.key)
		}
		req.kind, req.pid = kindMessage, ans104.Base64URL(item.Target)
	}
	return s.enqueue(ctx, req)
}

// Assign schedules an existing transaction txID on a process (POST
// /?process-id=&assign=). With baseLayer the transaction must have at least the
// process's Settlement-Depth confirmations (default 20). Each exclude value
// becomes an Exclude tag. Assigning the same id to the same process twice
// returns the first assignment.
func (s *Scheduler) Assign(ctx context.Context, processID, txID string, baseLayer bool, exclude []string) (*Receipt, error) {
	if _, err := ans104.DecodeID(processID); err != nil {
		return nil, inputErr("Invalid process-id: %v", err)
	}
	if len(txID) != 43 {
		return nil, inputErr("assign param must be 43 characters")
	}
	if _, err := ans104.DecodeID(txID); err != nil {
		return nil, inputErr("Invalid assign id: %v", err)
	}
	for _, e := range exclude {
		if !utf8.ValidString(e) || len(e) > ans104.MaxTagValueBytes {
			return nil, inputErr("Invalid exclude value")
		}
	}
	p, err := s.cfg.Store.Process(ctx, processID)
	if errors.Is(err, ErrNotFound) {
		return nil, inputErr("Process %s not found", processID)
	}
	if err != nil {
		return nil, err
	}
	if baseLayer {
		if s.cfg.BaseLayerStatus == nil {
			return nil, inputErr("Base layer assignments are not available on this SU")
		}
		st, err := s.cfg.BaseLayerStatus(ctx, txID)
		if errors.Is(err, ErrNotFound) {
			return nil, inputErr("Invalid gateway tx for assigning: %v", err)
		}
		if err != nil { // not the caller's fault: a retry can pass
			return nil, fmt.Errorf("%w: status of %s: %w", ErrUnavailable, txID, err)
		}
		depth := int64(20)
		if item, err := ans104.Parse(p.Item); err == nil {
			if v, ok := item.Tag("Settlement-Depth"); ok {
				if n, err := strconv.ParseInt(v, 10, 32); err == nil {
					depth = n
				}
			}
		}
		if st.NumberOfConfirmations < depth {
			return nil, inputErr("Not enough confirmations to assign")
		}
	} else if s.cfg.Exists != nil {
		// Items this SU scheduled count as existing even before the outbox has
		// published them, so that an MU can assign a message it just pushed.
		if _, err := s.cfg.Store.SlotByID(ctx, txID); err != nil {
			if _, perr := s.cfg.Store.Process(ctx, txID); perr != nil {
				ok, err := s.cfg.Exists(ctx, txID)
				if err != nil {
					return nil, fmt.Errorf("%w: does %s exist: %w", ErrUnavailable, txID, err)
				}
				if !ok {
					return nil, inputErr("Transaction %s not found", txID)
				}
			}
		}
	}
	return s.enqueue(ctx, &request{kind: kindAssign, pid: processID, key: txID, exclude: exclude})
}

func (s *Scheduler) enqueue(ctx context.Context, req *request) (*Receipt, error) {
	req.reply = make(chan result, 1)
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	p := s.procs[req.pid]
	if p == nil {
		p = &proc{id: req.pid, reqs: make(chan *request, 4096), inflight: make(map[string]*pending)}
		s.procs[req.pid] = p
		s.wg.Add(1)
		go s.signLoop(p)
	}
	p.refs++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		p.refs--
		s.mu.Unlock()
	}()
	select {
	case p.reqs <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
	// Once queued, wait for the outcome even if the caller gives up: the item
	// may be committed, and a retry will find it.
	select {
	case res := <-req.reply:
		return res.r, res.err
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
}

const idleTimeout = 30 * time.Second

func (s *Scheduler) signLoop(p *proc) {
	defer s.wg.Done()
	idle := time.NewTimer(idleTimeout)
	defer idle.Stop()
	batch := make([]*request, 0, s.cfg.MaxBatch)
	for {
		select {
		case req := <-p.reqs:
			batch = append(batch[:0], req)
		drain:
			for len(batch) < s.cfg.MaxBatch {
				select {
				case r := <-p.reqs:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			s.handle(p, batch)
			clear(batch)
			idle.Reset(idleTimeout)
		case <-idle.C:
			s.mu.Lock()
			if p.refs == 0 && len(p.reqs) == 0 {
				p.mu.Lock()
				empty := len(p.inflight) == 0
				p.mu.Unlock()
				if empty {
					delete(s.procs, p.id)
					s.mu.Unlock()
					return
				}
			}
			s.mu.Unlock()
			idle.Reset(idleTimeout)
		case <-s.ctx.Done():
			return
		}
	}
}

// loadHead reads the end of a process's schedule from the store.
func (s *Scheduler) loadHead(ctx context.Context, pid string) (head, error) {
	h := head{loaded: true}
	p, err := s.cfg.Store.Process(ctx, pid)
	if errors.Is(err, ErrNotFound) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	h.exists, h.legacy = true, p.Legacy()
	last, err := s.cfg.Store.LastSlot(ctx, pid)
	switch {
	case err == nil:
		h.next, h.epoch, h.ts = last.Nonce+1, last.Epoch, last.Timestamp
		h.hasPrev = true
		if h.prevAID, err = decode32(last.AssignmentID); err == nil {
			h.prevHC, err = decode32(last.HashChain)
		}
		if err != nil {
			return h, fmt.Errorf("su: stored slot %d of %s: %w", last.Nonce, pid, err)
		}
	case !errors.Is(err, ErrNotFound):
		return h, err
	case h.legacy:
		h.next, h.ts = 0, p.Timestamp
	default:
		h.next, h.epoch, h.ts = p.Nonce+1, p.Epoch, p.Timestamp
		h.hasPrev = true
		if h.prevAID, err = decode32(p.AssignmentID); err == nil {
			h.prevHC, err = decode32(p.HashChain)
		}
		if err != nil {
			return h, fmt.Errorf("su: stored process %s: %w", pid, err)
		}
	}
	return h, nil
}

func (s *Scheduler) handle(p *proc, batch []*request) {
	ctx := s.ctx
	p.mu.Lock()
	if p.gen != p.seenGen {
		// A commit failed: everything signed after the last commit is void.
		p.head, p.seenGen = p.committed, p.gen
	}
	p.mu.Unlock()
	if !p.head.loaded {
		h, err := s.loadHead(ctx, p.id)
		if err != nil {
			for _, r := range batch {
				r.reply <- result{err: fmt.Errorf("%w: %v", ErrRetry, err)}
			}
			return
		}
		p.head = h
		p.mu.Lock()
		p.committed = h
		p.mu.Unlock()
	}

	// Duplicates of items still in flight wait for them; the rest are looked up
	// in the store (in one query) before anything is signed.
	fresh := batch[:0:0]
	var ids []string
	p.mu.Lock()
	for _, r := range batch {
		if pd := p.inflight[r.key]; pd != nil {
			go waitDuplicate(pd, r)
			continue
		}
		fresh = append(fresh, r)
		if r.kind != kindProcess {
			ids = append(ids, r.key)
		}
	}
	p.mu.Unlock()
	var existing map[string]*SlotRecord
	if len(ids) > 0 && p.head.exists {
		var err error
		if existing, err = s.cfg.Store.Scheduled(ctx, p.id, ids); err != nil {
			for _, r := range fresh {
				r.reply <- result{err: fmt.Errorf("%w: %v", ErrRetry, err)}
			}
			return
		}
	}

	for _, r := range fresh {
		p.mu.Lock()
		pd := p.inflight[r.key]
		p.mu.Unlock()
		if pd != nil { // a duplicate within this batch
			go waitDuplicate(pd, r)
			continue
		}
		if r.kind == kindProcess && p.head.exists {
			r.reply <- s.existingProcess(ctx, p.id)
			continue
		}
		if slot := existing[r.key]; slot != nil {
			r.reply <- result{r: slotReceipt(slot, r.kind, true)}
			continue
		}
		if r.kind != kindProcess && !p.head.exists {
			r.reply <- result{err: inputErr("Process %s not found on this SU", p.id)}
			continue
		}
		j, err := s.sign(p, r)
		if err != nil {
			r.reply <- result{err: err}
			continue
		}
		p.mu.Lock()
		p.inflight[r.key] = j.pend
		p.mu.Unlock()
		select {
		case s.commitCh <- j:
		case <-ctx.Done():
			r.reply <- result{err: ErrClosed}
			return
		}
	}
}

func waitDuplicate(pd *pending, r *request) {
	<-pd.done
	if pd.err != nil {
		r.reply <- result{err: pd.err}
		return
	}
	rc := *pd.r
	rc.Existing = true
	r.reply <- result{r: &rc}
}

func (s *Scheduler) existingProcess(ctx context.Context, pid string) result {
	p, err := s.cfg.Store.Process(ctx, pid)
	if err != nil {
		return result{err: fmt.Errorf("%w: %v", ErrRetry, err)}
	}
	r := &Receipt{ID: pid, ProcessID: pid, Nonce: p.Nonce, AssignmentID: p.AssignmentID, Timestamp: p.Timestamp, BlockHeight: p.BlockHeight, Existing: true}
	if p.Legacy() {
		r.Nonce = -1
	}
	return result{r: r}
}

func slotReceipt(slot *SlotRecord, kind int, existing bool) *Receipt {
	r := &Receipt{ID: slot.MessageID, ProcessID: slot.ProcessID, Nonce: slot.Nonce, AssignmentID: slot.AssignmentID,
		Timestamp: slot.Timestamp, BlockHeight: slot.BlockHeight, Existing: existing}
	if kind == kindAssign {
		r.ID = slot.AssignmentID
	}
	return r
}

// randomAnchor returns 32 random bytes that are not valid UTF-8, so that the
// assignment's anchor shows as null in SU JSON, as the reference's does.
func randomAnchor() []byte {
	a := make([]byte, 32)
	for {
		rand.Read(a)
		if !utf8.Valid(a) {
			return a
		}
	}
}

// AssignmentTags returns the reference SU's assignment tags in its order
// (units.md §3.7). message is "" for a process's own assignment.
func AssignmentTags(processID string, epoch, nonce int64, hashChain, blockHeight string, timestamp int64, message string, exclude []string) []ans104.Tag {
	tags := make([]ans104.Tag, 0, 10+len(exclude))
	tags = append(tags,
		ans104.Tag{Name: "Process", Value: processID},
		ans104.Tag{Name: "Epoch", Value: strconv.FormatInt(epoch, 10)},
		ans104.Tag{Name: "Nonce", Value: strconv.FormatInt(nonce, 10)},
		ans104.Tag{Name: "Hash-Chain", Value: hashChain},
		ans104.Tag{Name: "Block-Height", Value: blockHeight},
		ans104.Tag{Name: "Timestamp", Value: strconv.FormatInt(timestamp, 10)},
		ans104.Tag{Name: "Data-Protocol", Value: "ao"},
		ans104.Tag{Name: "Type", Value: "Assignment"},
		ans104.Tag{Name: "Variant", Value: "ao.TN.1"},
	)
	if message != "" {
		tags = append(tags, ans104.Tag{Name: "Message", Value: message})
	}
	for _, e := range exclude {
		tags = append(tags, ans104.Tag{Name: "Exclude", Value: e})
	}
	return tags
}

// sign computes the next slot of p for r and signs its assignment. It advances
// p.head only when it succeeds.
func (s *Scheduler) sign(p *proc, r *request) (*job, error) {
	h := p.head
	now := s.cfg.Now()
	ts := max(now, h.ts)
	if h.hasPrev && h.next == 1 && !h.legacy {
		// The first message must sort after the process edge, whose cursor is
		// its timestamp.
		ts = max(ts, h.ts+1)
	}
	height := PadHeight(s.cfg.Height())
	j := &job{p: p, gen: p.seenGen, key: r.key, req: r, pend: &pending{done: make(chan struct{})}}

	if r.kind == kindProcess && s.cfg.Legacy {
		j.process = &ProcessRecord{ID: p.id, Item: r.item.Bytes(), Timestamp: ts, BlockHeight: height}
		j.outbox = []OutboxItem{{ItemID: p.id, Item: r.item.Bytes()}}
		j.after = head{loaded: true, exists: true, legacy: true, next: 0, ts: ts}
		j.receipt = &Receipt{ID: p.id, ProcessID: p.id, Nonce: -1, Timestamp: ts, BlockHeight: height}
		j.size = len(r.item.Bytes())
		p.head = j.after
		return j, nil
	}

	pid, err := decode32(p.id)
	if err != nil {
		return nil, inputErr("Invalid process id %s", p.id)
	}
	nonce := h.next
	hc := HashChainSeed(pid)
	if h.hasPrev {
		hc = HashChainNext(h.prevAID, h.prevHC)
	}
	hcs := ans104.Base64URL(hc[:])
	message := r.key
	if r.kind == kindProcess {
		message = ""
	}
	tags := AssignmentTags(p.id, h.epoch, nonce, hcs, height, ts, message, r.exclude)
	s.wanting.Add(1)
	s.signSem <- struct{}{}
	start := time.Now()
	a, err := ans104.Sign(s.cfg.Signer, nil, ans104.Options{Anchor: randomAnchor(), Tags: tags})
	took := time.Since(start)
	<-s.signSem
	s.wanting.Add(-1)
	if avg := s.signNanos.Load(); avg == 0 {
		s.signNanos.Store(int64(took))
	} else {
		s.signNanos.Store(avg + (int64(took)-avg)/8)
	}
	s.cfg.Metrics.observeSign(took)
	if err != nil {
		if strings.Contains(err.Error(), "tag") {
			return nil, inputErr("Cannot build the assignment: %v", err)
		}
		return nil, fmt.Errorf("su: sign assignment: %w", err)
	}
	aid := a.RawID()
	aids := ans104.Base64URL(aid[:])
	j.after = head{loaded: true, exists: true, legacy: h.legacy, next: nonce + 1, epoch: h.epoch, hasPrev: true, prevAID: aid, prevHC: hc, ts: ts}
	j.receipt = &Receipt{ID: r.key, ProcessID: p.id, Nonce: nonce, AssignmentID: aids, Timestamp: ts, BlockHeight: height}
	switch r.kind {
	case kindProcess:
		j.process = &ProcessRecord{ID: p.id, Item: r.item.Bytes(), Assignment: a.Bytes(), AssignmentID: aids,
			Epoch: h.epoch, Nonce: nonce, HashChain: hcs, Timestamp: ts, BlockHeight: height}
		j.outbox = []OutboxItem{{ItemID: p.id, Item: r.item.Bytes()}, {ItemID: aids, Item: a.Bytes()}}
		j.size = len(r.item.Bytes()) + len(a.Bytes())
	case kindMessage, kindAssign:
		var msg []byte
		if r.kind == kindMessage {
			msg = r.item.Bytes()
			j.outbox = append(j.outbox, OutboxItem{ItemID: r.key, Item: msg})
		} else {
			j.receipt.ID = aids
		}
		j.outbox = append(j.outbox, OutboxItem{ItemID: aids, Item: a.Bytes()})
		j.slot = &SlotRecord{ProcessID: p.id, Nonce: nonce, Epoch: h.epoch, MessageID: r.key, AssignmentID: aids,
			Timestamp: ts, HashChain: hcs, BlockHeight: height, Assignment: a.Bytes(), Message: msg}
		j.size = len(msg) + len(a.Bytes())
	}
	p.head = j.after
	return j, nil
}

const maxCommitBytes = 32 << 20

func (s *Scheduler) commitLoop() {
	defer s.wg.Done()
	jobs := make([]*job, 0, s.cfg.MaxCommit)
	for {
		var first *job
		select {
		case first = <-s.commitCh:
		case <-s.ctx.Done():
			s.failQueued()
			return
		}
		jobs = append(jobs[:0], first)
		size := first.size
	drain:
		for len(jobs) < s.cfg.MaxCommit && size < maxCommitBytes {
			select {
			case j := <-s.commitCh:
				jobs = append(jobs, j)
				size += j.size
			default:
				break drain
			}
		}
		if linger := s.linger(); linger > 0 {
			t := time.NewTimer(linger)
		wait:
			for len(jobs) < s.cfg.MaxCommit && size < maxCommitBytes {
				select {
				case j := <-s.commitCh:
					jobs = append(jobs, j)
					size += j.size
				case <-t.C:
					break wait
				case <-s.ctx.Done():
					break wait
				}
			}
			t.Stop()
		}
		s.commit(jobs)
		clear(jobs)
	}
}

// maxLinger bounds how long a group commit waits for more items.
const maxLinger = 20 * time.Millisecond

// linger is how long the committer waits for more items before it commits.
// Only while signing saturates the CPU (more signers want a core than there
// are cores) is it worth waiting: items then keep coming at one per signature
// time per core, every request already waits for the signers ahead of it, and
// a commit (statements, WAL pages, fsync) costs about as much CPU for one item
// as for several. It waits up to four signature times (a commit then carries
// about four items per core), never longer than the requests queued beyond
// the cores already wait, and never more than maxLinger. With RSA-4096 and 64
// busy processes on 2 cores this doubles the items per commit (4 to 9) and
// saves about 75 µs of CPU per assignment; an Ed25519 SU signs so fast that
// it practically never waits.
func (s *Scheduler) linger() time.Duration {
	want, cores := s.wanting.Load(), int64(cap(s.signSem))
	if want <= cores {
		return 0
	}
	sign := time.Duration(s.signNanos.Load())
	return min(maxLinger, 4*sign, sign*time.Duration(want-cores)/time.Duration(cores))
}

func (s *Scheduler) failQueued() {
	for {
		select {
		case j := <-s.commitCh:
			s.finish(j, nil, ErrClosed)
		default:
			return
		}
	}
}

func (s *Scheduler) commit(jobs []*job) {
	live := jobs[:0:0]
	for _, j := range jobs {
		j.p.mu.Lock()
		stale := j.gen != j.p.gen
		j.p.mu.Unlock()
		if stale {
			s.finish(j, nil, fmt.Errorf("%w: an earlier commit of process %s failed", ErrRetry, j.p.id))
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	b := &Batch{}
	for _, j := range live {
		if j.process != nil {
			b.Processes = append(b.Processes, j.process)
		}
		if j.slot != nil {
			b.Slots = append(b.Slots, j.slot)
		}
		b.Outbox = append(b.Outbox, j.outbox...)
	}
	start := time.Now()
	err := s.cfg.Store.Commit(s.ctx, b)
	s.cfg.Metrics.observeCommit(time.Since(start), len(live), err)
	if err != nil {
		s.cfg.Logger.Error("group commit failed", "items", len(live), "err", err)
		for _, j := range live {
			j.p.mu.Lock()
			if j.gen == j.p.gen {
				j.p.gen++
			}
			j.p.mu.Unlock()
		}
		for _, j := range live {
			s.finish(j, nil, fmt.Errorf("%w: %v", ErrRetry, err))
		}
		return
	}
	for _, j := range live {
		j.p.mu.Lock()
		j.p.committed = j.after
		j.p.mu.Unlock()
		s.finish(j, j.receipt, nil)
	}
	if s.cfg.OnCommit != nil {
		s.cfg.OnCommit()
	}
}

func (s *Scheduler) finish(j *job, r *Receipt, err error) {
	j.p.mu.Lock()
	if j.p.inflight[j.key] == j.pend {
		delete(j.p.inflight, j.key)
	}
	j.p.mu.Unlock()
	j.pend.r, j.pend.err = r, err
	close(j.pend.done)
	if err == nil {
		s.cfg.Metrics.scheduled.Add(1)
	}
	j.req.reply <- result{r: r, err: err}
}

// Active is the number of processes with a running signer.
func (s *Scheduler) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.procs)
}
