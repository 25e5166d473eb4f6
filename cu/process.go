package cu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/sha3"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/cu/wasm"
	"github.com/aonode/aonode/su"
)

func keccak256(b []byte) []byte {
	h := sha3.NewLegacyKeccak256()
	h.Write(b)
	return h.Sum(nil)
}

// HTTPError is an error with the status the reference CU answers it with.
type HTTPError struct {
	Code int
	Msg  string
}

func (e *HTTPError) Error() string { return e.Msg }

func httpErr(code int, format string, args ...any) error {
	return &HTTPError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ErrChain is returned (wrapped) when a schedule fails Hash-Chain or nonce
// verification; nothing after the broken link is evaluated.
var ErrChain = errors.New("cu: schedule verification failed")

// procInfo is what does not change during a process's life.
type procInfo struct {
	pid, owner       string
	tags             []su.TagJSON
	data             *string
	timestamp        int64 // SU process timestamp
	height           int64 // SU process block height
	moduleID         string
	module           *wasm.Module
	drive            wasm.Arweave // WeaveDrive with this process's admissibility rule (drive.go)
	env              []byte
	crons            []cronSpec
	hasBlockCrons    bool
	memLimit         int64
	computeLimit     int64
	messageTimeLimit time.Duration
}

// position is where evaluation stands: all that is needed, with the memory,
// to continue. It is saved with every checkpoint.
type position struct {
	SUCursor   string `json:"suCursor"`   // "from" of the next SU page
	Nonce      int64  `json:"nonce"`      // last scheduled nonce, -1 before the first
	Epoch      int64  `json:"epoch"`      //
	Assignment string `json:"assignment"` // last scheduled assignment id
	HashChain  string `json:"hashChain"`  // and its Hash-Chain
	LeftTS     int64  `json:"leftTs"`     // last scheduled message timestamp (cron left edge)
	Height     int64  `json:"height"`     // current block height (cron Block-Height)
	CronNext   int64  `json:"cronNext"`   // next cron tick to consider (ms)
	Timestamp  int64  `json:"timestamp"`  // last evaluated timestamp
	Ordinate   int64  `json:"ordinate"`   // last evaluated ordinate
	Cron       string `json:"cron"`       // last evaluated cron id
	Injected   bool   `json:"injected"`   // legacy process message was injected
	Evaluated  int64  `json:"evaluated"`  // messages evaluated in total
}

func startPosition() position { return position{Nonce: -1} }

// proc is one process on this CU. mu serialises its evaluation: one
// process's messages run strictly in order, different processes in parallel.
type proc struct {
	mu        sync.Mutex
	info      *procInfo
	inst      *wasm.Instance
	pos       position
	dirty     int            // messages since the last file checkpoint
	lastUse   time.Time      // for the LRU (guarded by Server.mu)
	size      uint64         // resident memory of inst (guarded by Server.mu)
	sizedAt   time.Time      // when size was last measured
	sizedGen  int64          // gen then
	sizedInst *wasm.Instance // and the instance measured
	pubAt     time.Time      // last published checkpoint

	side       bool           // a throwaway evaluation of the past: never checkpointed
	dry        bool           // a dry-run: its own workers and fuel limit
	gen        atomic.Int64   // live memory changes (evaluations), for the dry-run cache
	syncedAt   time.Time      // when an evaluation to the SU's latest message last began
	arweaveAsk bool           // Arweave checkpoints were already considered for this proc
	failed     map[int64]bool // nonces whose stored result is a failure (read when an instance starts)
	digest     memDigest      // Memory-SHA-256 of inst, kept incrementally (attestations)
}

// process returns the proc for pid, loading its metadata on first use.
func (s *Server) process(ctx context.Context, pid string) (*proc, error) {
	s.mu.Lock()
	p, ok := s.procs[pid]
	if !ok {
		p = &proc{pos: startPosition()}
		s.procs[pid] = p
	}
	s.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.info == nil {
		info, err := s.loadInfo(ctx, pid)
		if err != nil {
			return nil, err
		}
		p.info = info
	}
	return p, nil
}

// loadInfo reads the process from its SU and the module from the gateway and
// applies the reference's checks (units.md §5.3).
func (s *Server) loadInfo(ctx context.Context, pid string) (*procInfo, error) {
	pj, err := s.sched.Process(ctx, pid)
	if errors.Is(err, ErrNotFound) {
		return nil, httpErr(http.StatusNotFound, "Process %s was not found on its scheduler", pid)
	}
	if err != nil {
		return nil, err
	}
	has := func(tags []su.TagJSON, name, want string) bool {
		v, _ := tagValue(tags, name)
		return strings.Contains(v, want)
	}
	if !has(pj.Tags, "Data-Protocol", "ao") || !has(pj.Tags, "Type", "Process") {
		return nil, httpErr(http.StatusUnprocessableEntity, "%s is not an ao Process", pid)
	}
	modID, ok := tagValue(pj.Tags, "Module")
	if !ok {
		return nil, httpErr(http.StatusUnprocessableEntity, "Process %s has no Module tag", pid)
	}
	height, _ := jsParseInt(pj.Block)
	info := &procInfo{pid: pid, owner: ownerAddress(pj.Owner.Address, pj.Owner.Key), tags: pj.Tags, data: pj.Data,
		timestamp: pj.Timestamp, height: height, moduleID: modID, messageTimeLimit: s.cfg.MessageTimeout}
	mtx, err := s.gw.Tx(ctx, modID)
	if errors.Is(err, ErrNotFound) {
		return nil, httpErr(http.StatusNotFound, "Module %s was not found on the gateway", modID)
	}
	if err != nil {
		return nil, err
	}
	format, _ := tagValue(mtx.Tags, "Module-Format")
	if !slices.Contains(supportedFormats, format) {
		return nil, httpErr(http.StatusUnprocessableEntity, "Module-Format for module %q is not supported", modID)
	}
	for _, enc := range []string{"Input-Encoding", "Output-Encoding"} {
		if _, ok := tagValue(mtx.Tags, enc); !ok {
			return nil, httpErr(http.StatusUnprocessableEntity, "%s for module %q is not supported", enc, modID)
		}
	}
	limit := func(name string, max int64, parse func(string) (int64, bool)) (int64, error) {
		v, ok := tagValue(pj.Tags, name)
		if !ok {
			v, ok = tagValue(mtx.Tags, name)
		}
		n, okp := parse(v)
		if !ok || !okp || n > max {
			return 0, httpErr(http.StatusRequestEntityTooLarge, "%s for process %q exceeds supported limit", name, pid)
		}
		return n, nil
	}
	if info.memLimit, err = limit("Memory-Limit", s.cfg.MaxMemory, parseMemoryLimit); err != nil {
		return nil, err
	}
	if info.computeLimit, err = limit("Compute-Limit", s.cfg.MaxCompute, jsParseInt); err != nil {
		return nil, err
	}
	exts := moduleExtensions(format, mtx.Tags)
	if info.crons, err = parseCrons(pj.Tags); err != nil {
		return nil, httpErr(http.StatusUnprocessableEntity, "%v", err)
	}
	for _, c := range info.crons {
		info.hasBlockCrons = info.hasBlockCrons || c.Blocks > 0
	}
	if info.module, err = s.compile(ctx, modID, format, exts); err != nil {
		return nil, err
	}
	info.drive = newCheckedDrive(s.gw, newDrivePolicy(pid, pj.Tags, mtx.Tags))
	info.env, err = jsonText(envDoc(pid, info.owner, pj.Tags, modID, ownerAddress(mtx.Owner, mtx.OwnerKey), mtx.Tags))
	if err != nil {
		return nil, err
	}
	return info, nil
}

var supportedFormats = []string{wasm.FormatEmscripten, wasm.FormatEmscripten2, wasm.FormatEmscripten3, wasm.FormatEmscripten4,
	wasm.FormatWasm64, wasm.FormatEmscriptenMetering, wasm.FormatWasm64Metering}

type modEntry struct {
	once sync.Once
	mod  *wasm.Module
	err  error
}

// compile compiles a module once per id (concurrent callers share it).
func (s *Server) compile(ctx context.Context, id, format string, exts []string) (*wasm.Module, error) {
	s.mu.Lock()
	e, ok := s.modules[id]
	if !ok {
		e = &modEntry{}
		s.modules[id] = e
	}
	s.mu.Unlock()
	e.once.Do(func() {
		bin, err := s.gw.Raw(ctx, id)
		if err != nil {
			e.err = fmt.Errorf("cu: module %s: %w", id, err)
			return
		}
		e.mod, e.err = wasm.Compile(context.WithoutCancel(ctx), bin, wasm.Options{Format: format, Extensions: exts, CacheDir: s.cfg.cacheDir(), Engine: s.cfg.Engine})
		if errors.Is(e.err, wasm.ErrUnsupported) {
			e.err = httpErr(http.StatusUnprocessableEntity, "Module %s is not supported: %v", id, e.err)
		}
	})
	if e.err != nil {
		var he *HTTPError
		if !errors.As(e.err, &he) { // transient: let a later request retry
			s.mu.Lock()
			delete(s.modules, id)
			s.mu.Unlock()
		}
	}
	return e.mod, e.err
}

// ensureInstance gives p a live instance (p.mu held), by the reference's
// hot-start tiers (units.md §5.11): the local file checkpoint, a newer
// Checkpoint item from the permanent store, else a cold start that replays
// from the beginning. tgt bounds how far the restored state may be: a live
// process always takes its own checkpoint (it never moves backwards), a side
// evaluation of the past only one that tgt admits.
func (s *Server) ensureInstance(ctx context.Context, p *proc, tgt target) error {
	if p.inst != nil {
		return nil
	}
	failed, err := s.store.failed(ctx, p.info.pid)
	if err != nil {
		return err
	}
	p.failed = failed
	cfg := p.mem0Config(s)
	var local *position
	st, ok := s.localCheckpoint(ctx, p.info.pid)
	if ok && (!p.side || tgt.admits(st.Pos)) {
		local = &st.Pos
	}
	askArweave := s.arweaveCheckpoints() && (local == nil || p.side || !p.arweaveAsk)
	if askArweave {
		if inst, pos, ok := s.restoreArweave(ctx, p, cfg, tgt, local); ok {
			p.inst, p.pos, p.dirty = inst, pos, 0
			s.metrics.restores.Add(1)
			s.touch(p)
			return nil
		}
	}
	if local != nil {
		if inst, pos, ok := s.restore(ctx, p, cfg, st); ok {
			p.inst, p.pos, p.dirty = inst, pos, 0
			s.metrics.restores.Add(1)
			s.touch(p)
			return nil
		}
		// The local checkpoint is unusable: a published one, also an
		// older one, may still be.
		if s.arweaveCheckpoints() {
			if inst, pos, ok := s.restoreArweave(ctx, p, cfg, tgt, nil); ok {
				p.inst, p.pos, p.dirty = inst, pos, 0
				s.metrics.restores.Add(1)
				s.touch(p)
				return nil
			}
		}
	}
	inst, err := p.info.module.Instantiate(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cu: instantiate %s: %w", p.info.pid, err)
	}
	p.inst, p.pos, p.dirty = inst, startPosition(), 0
	s.metrics.coldStarts.Add(1)
	s.touch(p)
	return nil
}

// target is how far an evaluation must go and how far a restored state may
// already be.
type target struct {
	latest bool  // the SU's latest message
	ts     int64 // else: the last message with timestamp <= ts
	nonce  int64 // >= 0: the result of this scheduled nonce is wanted
}

var latest = target{latest: true, nonce: -1}

// admits reports whether evaluation can reach t from pos.
func (t target) admits(pos position) bool {
	switch {
	case pos.Nonce < 0:
		return true
	case t.nonce >= 0:
		return pos.Nonce < t.nonce
	case t.latest:
		return true
	}
	return pos.Timestamp <= t.ts
}

// evalOptions bound an evaluation run.
type evalOptions struct {
	to        string // SU timestamp to stop at (inclusive); "" = latest
	cronToNow bool   // also generate crons up to the SU's clock
	cronUpto  int64  // > 0: also generate crons with tick <= cronUpto (bounded by the SU's clock)
	tgt       target // for choosing a checkpoint (zero: derived from to)
}

// target derives the evaluation target of o.
func (o evalOptions) target() target {
	if o.tgt != (target{}) {
		return o.tgt
	}
	if o.to == "" {
		return latest
	}
	ts, _ := jsParseInt(o.to)
	return target{ts: ts, nonce: -1}
}

// evaluate brings p up to opts (p.mu held) and stores the results.
func (s *Server) evaluate(ctx context.Context, p *proc, opts evalOptions) error {
	if err := s.ensureInstance(ctx, p, opts.target()); err != nil {
		return err
	}
	began := time.Now()
	toMS, hasTo := jsParseInt(opts.to)
	tgt := opts.target()
	var batch []evalRow
	flush := func() error {
		err := s.store.putEvals(context.WithoutCancel(ctx), batch)
		s.settled(batch)
		if err == nil && s.cfg.PublishAttestations && len(batch) > 0 {
			select {
			case s.attestQ <- struct{}{}:
			default:
			}
		}
		batch = batch[:0]
		return err
	}
	defer func() { s.touch(p) }()
	// Pages start one millisecond before the last evaluated slot's
	// timestamp cursor: the SU may assign another slot in that same
	// millisecond after the last page was read, and a page from the cursor
	// itself (exclusive) would skip it, leaving a gap in the nonces. The
	// slots read again are skipped by nonce. Should a page hold nothing new
	// while more follow, the next starts at its last cursor instead.
	from := overlap(p.pos.SUCursor)
	for {
		// Done once the target slot is evaluated, or once a slot later than
		// to is: the SU may still assign slots in to's own millisecond.
		if hasTo && p.pos.Nonce >= 0 && p.pos.SUCursor != "" &&
			(p.pos.LeftTS > toMS || tgt.nonce >= 0 && p.pos.Nonce >= tgt.nonce) {
			break
		}
		page, err := s.sched.Messages(ctx, p.info.pid, from, opts.to, s.cfg.PageSize)
		if err != nil {
			return errors.Join(err, flush())
		}
		before := p.pos.Nonce
		past := false
		for _, e := range page.Edges {
			// (The SU's AOP-6 first edge, the process, ignores to.)
			if hasTo {
				if v, _ := tagValue(e.Node.Assignment.Tags, "Timestamp"); v != "" {
					if ts, ok := jsParseInt(v); ok && ts > toMS {
						past = true
						break
					}
				}
			}
			if err := s.step(ctx, p, e, &batch); err != nil {
				return errors.Join(err, flush())
			}
			if len(batch) >= 256 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if past || !page.PageInfo.HasNextPage || len(page.Edges) == 0 {
			break
		}
		from = overlap(p.pos.SUCursor)
		if p.pos.Nonce == before {
			from = page.Edges[len(page.Edges)-1].Cursor
		}
	}
	if (opts.cronToNow || opts.cronUpto > 0) && len(p.info.crons) > 0 && p.pos.Nonce >= 0 {
		now, _, err := s.sched.Now(ctx, p.info.pid)
		if err != nil {
			return errors.Join(err, flush())
		}
		if opts.cronUpto > 0 {
			now = min(now, opts.cronUpto+1)
		}
		if err := s.crons(ctx, p, now, &batch); err != nil {
			return errors.Join(err, flush())
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if opts.to == "" {
		p.syncedAt = began
	}
	if !p.side && s.cfg.CheckpointEvery > 0 && p.dirty >= s.cfg.CheckpointEvery {
		if err := s.checkpoint(ctx, p); err != nil {
			s.log.Warn("checkpoint failed", "process", p.info.pid, "err", err)
		}
	}
	return nil
}

// overlap is the page cursor one millisecond before a timestamp cursor (a
// cursor that is not a timestamp is used as it is).
func overlap(cursor string) string {
	if ts, err := strconv.ParseInt(cursor, 10, 64); err == nil && ts > 0 {
		return strconv.FormatInt(ts-1, 10)
	}
	return cursor
}

// step verifies and evaluates one schedule edge.
func (s *Server) step(ctx context.Context, p *proc, e su.EdgeJSON, batch *[]evalRow) error {
	a := &e.Node.Assignment
	sl, err := assignmentNumbers(a)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrChain, err)
	}
	if p.pos.Nonce >= 0 && sl.Nonce <= p.pos.Nonce {
		return nil // already evaluated (overlapping page)
	}
	if err := verifyLink(p.info.pid, p.pos, sl); err != nil {
		return err
	}
	sl.Cursor = e.Cursor
	// Legacy process: the process itself is evaluated first and not saved.
	if p.pos.Nonce < 0 && !p.pos.Injected && (e.Node.Message == nil || e.Node.Message.ID != p.info.pid) {
		if err := s.injectProcess(ctx, p); err != nil {
			return err
		}
	}
	if p.pos.Nonce >= 0 {
		if err := s.crons(ctx, p, sl.Timestamp, batch); err != nil {
			return err
		}
	}
	var doc obj
	if m := e.Node.Message; m != nil {
		sl.MessageID = m.ID
		doc = messageDoc(m, sl, p.info.pid)
	} else {
		if doc, err = s.hydrate(ctx, a, sl); err != nil {
			return err
		}
		sl.MessageID = doc.get("Id").(string)
	}
	skip, err := s.store.evaluatedBefore(ctx, p.info.pid, sl.MessageID, sl.Nonce)
	if err != nil {
		return err
	}
	if !skip {
		// Also dedupe within the unflushed batch.
		for _, r := range *batch {
			skip = skip || r.Cron == "" && r.MessageID == sl.MessageID
		}
	}
	if !skip && p.failed[sl.Nonce] {
		// It failed before, which left the memory as it was (wasm.Instance
		// rolls a failed message back): its stored result stands and it is
		// not run again. A message that failed at the fuel limit would
		// otherwise burn it again on every replay.
		skip = true
		p.pos.Timestamp, p.pos.Ordinate, p.pos.Cron = sl.Timestamp, sl.Nonce, ""
	}
	if !skip {
		// A slot whose result is stored was paid for (or was free): a replay
		// that rebuilds the memory through it charges nothing.
		paid := false
		if s.pricing() && !s.exempt(p) {
			if _, stored, err := s.store.resultAt(ctx, p.info.pid, sl.Timestamp, sl.Nonce); err != nil {
				return err
			} else if paid = stored; !paid {
				if err := s.afford(ctx, payerOf(ctx, p), s.cfg.Prices.Message); err != nil {
					return err
				}
			}
		}
		start := time.Now()
		res, err := s.handle(ctx, p, doc)
		if err != nil {
			return err
		}
		if s.cfg.fault != nil {
			res.json = s.cfg.fault(p.info.pid, sl.Nonce, res.json)
		}
		row := evalRow{Process: p.info.pid, Timestamp: sl.Timestamp, Ordinate: sl.Nonce, MessageID: sl.MessageID,
			Nonce: sl.Nonce, Height: sl.Height, IsError: res.isError, Result: res.json}
		if row.Attest, err = s.attestFields(p, res, sl.Nonce, sl.AssignmentID, sl.HashChain); err != nil {
			return err
		}
		if !paid {
			row.Charge = s.charge(ctx, p, "slot:"+itoa(sl.Nonce), res, time.Since(start))
		}
		*batch = append(*batch, row)
		p.pos.Timestamp, p.pos.Ordinate, p.pos.Cron = sl.Timestamp, sl.Nonce, ""
	}
	p.pos.SUCursor = sl.Cursor
	p.pos.Nonce, p.pos.Epoch, p.pos.Assignment, p.pos.HashChain = sl.Nonce, sl.Epoch, sl.AssignmentID, sl.HashChain
	p.pos.LeftTS, p.pos.Height, p.pos.CronNext = sl.Timestamp, sl.Height, sl.Timestamp
	return nil
}

// verifyLink checks the legacy Hash-Chain and nonce succession (units.md §3.6).
func verifyLink(pid string, pos position, sl slot) error {
	links := []su.ChainLink{{Nonce: sl.Nonce, AssignmentID: sl.AssignmentID, HashChain: sl.HashChain}}
	if pos.Nonce >= 0 {
		links = append([]su.ChainLink{{Nonce: pos.Nonce, AssignmentID: pos.Assignment, HashChain: pos.HashChain}}, links...)
		// VerifyHashChain checks the first link against the seed; check the
		// pair by hand instead.
		prevA, err1 := ans104.DecodeID(pos.Assignment)
		prevH, err2 := ans104.DecodeID(pos.HashChain)
		hc, err3 := ans104.DecodeID(sl.HashChain)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("%w at nonce %d: %v", ErrChain, sl.Nonce, err)
		}
		if sl.Nonce != pos.Nonce+1 {
			return fmt.Errorf("%w: nonce %d follows %d", ErrChain, sl.Nonce, pos.Nonce)
		}
		if hc != su.HashChainNext(prevA, prevH) {
			return fmt.Errorf("%w at nonce %d: Hash-Chain %s does not follow assignment %s", ErrChain, sl.Nonce, sl.HashChain, pos.Assignment)
		}
		return nil
	}
	if sl.Nonce != 0 {
		return fmt.Errorf("%w: schedule starts at nonce %d", ErrChain, sl.Nonce)
	}
	if err := su.VerifyHashChain(pid, links); err != nil {
		return fmt.Errorf("%w: %v", ErrChain, err)
	}
	return nil
}

// injectProcess evaluates a legacy process's own message (units.md §5.6).
func (s *Server) injectProcess(ctx context.Context, p *proc) error {
	data := ""
	if b, err := s.gw.Raw(ctx, p.info.pid); err == nil {
		data = string(b)
	} else if p.info.data != nil {
		data = *p.info.data
	}
	from := p.info.owner
	if fp, _ := tagValue(p.info.tags, "From-Process"); fp != "" {
		from = fp
	}
	doc := obj{{"Id", p.info.pid}, {"Data", data}, {"Owner", p.info.owner}, {"Target", p.info.pid}, {"From", from},
		{"Tags", p.info.tags}, {"Timestamp", p.info.timestamp}, {"Block-Height", p.info.height}, {"Cron", false}, {"Read-Only", false}}
	if _, err := s.handle(ctx, p, doc); err != nil {
		return err
	}
	p.pos.Injected = true
	return nil
}

// hydrate builds the message of a pure assignment from the gateway.
func (s *Server) hydrate(ctx context.Context, a *su.AssignmentInnerJSON, sl slot) (obj, error) {
	id, ok := tagValue(a.Tags, "Message")
	if !ok {
		return nil, fmt.Errorf("%w: assignment %s has no Message", ErrChain, a.ID)
	}
	excl := map[string]bool{}
	for _, t := range a.Tags {
		if t.Name == "Exclude" {
			excl[t.Value] = true
		}
	}
	tx, err := s.gw.Tx(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cu: hydrate %s: %w", id, err)
	}
	m := &su.MessageInnerJSON{ID: id, Owner: su.OwnerJSON{Address: tx.Owner, Key: tx.OwnerKey}}
	if !excl["Signature"] {
		m.Signature = tx.Signature
	}
	if !excl["Anchor"] && tx.Anchor != "" {
		m.Anchor = &tx.Anchor
	}
	if !excl["Tags"] {
		m.Tags = tx.Tags
	}
	if m.Tags == nil {
		m.Tags = []su.TagJSON{}
	}
	if !excl["Data"] {
		b, err := s.gw.Raw(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("cu: hydrate %s: %w", id, err)
		}
		d := su.Lossy(b)
		m.Data = &d
	}
	target, _ := tagValue(a.Tags, "Process")
	_ = target
	return messageDoc(m, sl, tx.Recipient), nil
}

// crons evaluates the cron messages due in [p.pos.CronNext, upto)
// (units.md §5.10).
func (s *Server) crons(ctx context.Context, p *proc, upto int64, batch *[]evalRow) error {
	if len(p.info.crons) == 0 {
		return nil
	}
	origin := floorDiv(p.info.timestamp, 1000)
	var blocks []BlockMeta
	if p.info.hasBlockCrons {
		bs, err := s.gw.Blocks(ctx, p.pos.Height+1, 100)
		if err != nil {
			return err
		}
		blocks = bs
	}
	fire := func(c cronSpec, ts, height int64) error {
		start := time.Now()
		res, err := s.handle(ctx, p, cronDoc(p.info.pid, p.info.owner, c.Tags, ts, height))
		if err != nil {
			return err
		}
		row := evalRow{Process: p.info.pid, Timestamp: ts, Ordinate: p.pos.Nonce, Cron: c.ID, Nonce: -1,
			Height: height, IsError: res.isError, Result: res.json}
		if row.Attest, err = s.attestFields(p, res, p.pos.Nonce, p.pos.Assignment, p.pos.HashChain); err != nil {
			return err
		}
		if _, stored, err := s.store.cronResult(ctx, p.info.pid, ts, p.pos.Nonce, c.ID); err != nil {
			return err
		} else if !stored {
			row.Charge = s.charge(ctx, p, fmt.Sprintf("cron:%d:%d:%s", ts, p.pos.Nonce, c.ID), res, time.Since(start))
		}
		*batch = append(*batch, row)
		p.pos.Timestamp, p.pos.Ordinate, p.pos.Cron = ts, p.pos.Nonce, c.ID
		return nil
	}
	// Ticks up to the newest stored evaluation are a replay, already paid.
	var storedUpTo int64 = -1 << 62
	if s.pricing() && !s.exempt(p) {
		rows, _, err := s.store.evals(ctx, rangeQuery{Process: p.info.pid, Desc: true, Limit: 1})
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			storedUpTo = rows[0].Timestamp
		}
	}
	tick := p.pos.CronNext
	for ; tick < upto; tick += 1000 {
		sec := floorDiv(tick, 1000)
		// A tick is evaluated whole or not at all: a refusal between two of
		// its crons would leave the first evaluated and the position before
		// it, to be evaluated again. So the payer must afford every cron the
		// tick may fire (each cron, once per block due and once for the
		// interval) before the first.
		if s.pricing() && !s.exempt(p) && tick > storedUpTo {
			due := int64(1)
			for _, b := range blocks {
				if sec >= floorDiv(b.Timestamp, 1000) {
					due++
				}
			}
			if err := s.afford(ctx, payerOf(ctx, p), satMul(satMul(due, int64(len(p.info.crons))), s.cfg.Prices.Message)); err != nil {
				return err
			}
		}
		for len(blocks) > 0 && sec >= floorDiv(blocks[0].Timestamp, 1000) {
			b := blocks[0]
			blocks = blocks[1:]
			p.pos.Height = b.Height
			for _, c := range p.info.crons {
				if c.Blocks > 0 && b.Height != p.info.height && (b.Height-p.info.height)%c.Blocks == 0 {
					if err := fire(c, b.Timestamp, b.Height); err != nil {
						return err
					}
				}
			}
		}
		if sec == origin {
			continue
		}
		for _, c := range p.info.crons {
			if c.Seconds > 0 && (sec-origin)%c.Seconds == 0 {
				if err := fire(c, tick, p.pos.Height); err != nil {
					return err
				}
			}
		}
		p.pos.CronNext = tick + 1000
	}
	p.pos.CronNext = max(p.pos.CronNext, tick)
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// evalResult is one stored evaluation.
type evalResult struct {
	json      []byte
	isError   bool
	fuel, gas uint64
}

// handle runs one message with the per-message deadline and maps the result
// (units.md §5.2). A message that runs past the deadline is recorded as an
// Error result (memory rolled back), so one runaway loop cannot stall a
// process forever; the reference has no such limit for unmetered modules.
func (s *Server) handle(ctx context.Context, p *proc, doc obj) (evalResult, error) {
	msg, err := jsonText(doc)
	if err != nil {
		return evalResult{}, err
	}
	pl := s.workers
	if p.dry {
		pl = s.dryPool
	}
	if err := pl.acquire(ctx); err != nil {
		if errors.Is(err, errPoolFull) {
			s.metrics.dryRunLimited.Add(1)
			return evalResult{}, &HTTPError{Code: http.StatusServiceUnavailable, Msg: "Too many dry-runs are waiting; retry in a few seconds"}
		}
		return evalResult{}, err
	}
	held := true
	// Between slices of a long message, waiting evaluations go first.
	yctx := wasm.WithYield(ctx, func() error {
		if !pl.contended() {
			return nil
		}
		pl.release()
		held = false
		if err := pl.acquire(ctx); err != nil {
			return err
		}
		held = true
		return nil
	})
	mctx, cancel := context.WithTimeout(yctx, p.info.messageTimeLimit)
	start := time.Now()
	r, err := p.inst.Handle(mctx, msg, p.info.env)
	cancel()
	if held {
		pl.release()
	}
	s.metrics.observe(time.Since(start))
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// The wall clock protects the node but never decides a result:
			// nothing is stored and a later request evaluates it again.
			s.metrics.timeouts.Add(1)
			return evalResult{}, &HTTPError{Code: http.StatusServiceUnavailable,
				Msg: fmt.Sprintf("Evaluation of process %s ran past the CU's wall-clock guard of %s (the node is overloaded); retry later", p.info.pid, p.info.messageTimeLimit)}
		}
		return evalResult{}, fmt.Errorf("cu: evaluate %s: %w", p.info.pid, err)
	}
	if r.Failed() && bytes.Contains(r.Error, []byte(wasm.ErrFuelExhausted.Error())) {
		s.metrics.fuelExhausted.Add(1)
	}
	p.dirty++
	p.pos.Evaluated++
	if !p.side {
		p.gen.Add(1)
	}
	return mapResult(r), nil
}

// moduleExtensions returns the extensions a module runs with: its Extension
// tags, and WeaveDrive for the wasm64 format, to which the reference always
// attaches the drive (units.md §5.3; what the process may read is still up
// to the admissibility rule).
func moduleExtensions(format string, tags []su.TagJSON) []string {
	var exts []string
	for _, t := range tags {
		if t.Name == "Extension" {
			exts = append(exts, t.Value)
		}
	}
	if format == wasm.FormatWasm64 && !slices.Contains(exts, wasm.ExtensionWeaveDrive) {
		exts = append(exts, wasm.ExtensionWeaveDrive)
	}
	return exts
}

// mapResult turns a loader result into the reference /result JSON.
func mapResult(r *wasm.Result) evalResult {
	list := func(raw json.RawMessage) any {
		if len(raw) == 0 || string(raw) == "null" {
			return json.RawMessage("[]")
		}
		return raw
	}
	out := obj{{"Messages", list(r.Messages)}, {"Assignments", list(r.Assignments)}, {"Spawns", list(r.Spawns)}}
	if len(r.Output) > 0 {
		o := r.Output
		if len(o) > 0 && (o[0] == '-' || o[0] >= '0' && o[0] <= '9') {
			b, _ := jsonText(string(o)) // a numeric Output is stringified
			o = b
		}
		out = append(out, kv{"Output", o})
	}
	out = append(out, kv{"GasUsed", r.GasUsed})
	if r.Failed() {
		out = append(out, kv{"Error", r.Error})
	}
	b, _ := jsonText(out)
	return evalResult{json: b, isError: r.Failed(), fuel: r.Fuel, gas: r.GasUsed}
}

// outputIsOOM is the reference CU's check for the buffer allocation error of
// older modules (servers/cu/src/effects/worker/evaluate.js mergeOutput): an
// Output string, or the data.output string of an Output object, that ends in
// "not enough memory for buffer allocation". The reference then keeps the
// result as it is (no Error; its messages are sent) but puts the memory from
// before the message back: wasm.Config.Revert.
func outputIsOOM(o json.RawMessage) bool {
	var s string
	if json.Unmarshal(o, &s) != nil {
		var d struct {
			Data json.RawMessage `json:"data"`
		}
		var inner struct {
			Output any `json:"output"`
		}
		if json.Unmarshal(o, &d) == nil && json.Unmarshal(d.Data, &inner) == nil {
			s, _ = inner.Output.(string)
		}
	}
	return strings.HasSuffix(s, "not enough memory for buffer allocation")
}

// touch records p's use and memory for the LRU.
func (s *Server) touch(p *proc) {
	// Resident memory is read from the page tables (0.7 ms for an aos
	// instance), so at most once a second per process; sizes that changed
	// meanwhile are read by refreshSizes.
	var size uint64
	stale := p.inst != p.sizedInst || p.inst != nil && p.gen.Load() != p.sizedGen && time.Since(p.sizedAt) > time.Second
	if stale && p.inst != nil {
		size = s.measure(p)
	}
	p.sizedInst = p.inst
	s.mu.Lock()
	p.lastUse = time.Now()
	if stale {
		p.size = size
	}
	s.mu.Unlock()
}

// instanceOverhead is what a live instance holds besides its memory pages:
// wazero's instance (function and table entries, globals) and the host
// state. 200 booted aos instances added 908 MiB of RSS for 801 MiB of
// Resident pages, about half a MiB each.
const instanceOverhead = 512 << 10

// measure reads p's resident memory (p.mu held, p.inst set).
func (s *Server) measure(p *proc) uint64 {
	p.sizedAt, p.sizedGen, p.sizedInst = time.Now(), p.gen.Load(), p.inst
	return p.inst.Resident() + instanceOverhead
}

// refreshSizes re-reads the resident memory of live processes that
// evaluated since they were last measured, then keeps the budget: touch
// measures at most once a second, and a process that booted and went idle
// would otherwise be counted at its size before the boot.
func (s *Server) refreshSizes() {
	s.mu.Lock()
	live := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		if p.size > 0 {
			live = append(live, p)
		}
	}
	s.mu.Unlock()
	for _, p := range live {
		if !p.mu.TryLock() {
			continue
		}
		if p.inst != nil && p.gen.Load() != p.sizedGen {
			size := s.measure(p)
			s.mu.Lock()
			p.size = size
			s.mu.Unlock()
		}
		p.mu.Unlock()
	}
	s.enforceBudget(s.ctx)
}
