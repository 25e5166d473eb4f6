package cu

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/cu/wasm"
)

// Checkpoints are the process memory, in a sparse compressed file (memfile.go) named by the SHA-256
// of the uncompressed bytes (content-addressed: a corrupt file is detected on
// load and the process replays instead). The store row beside it holds the
// position to continue from. Only the newest checkpoint of a process is kept.

type checkpointState struct {
	Pos  position `json:"pos"`
	Size int      `json:"size"`
	sha  string   // the file's name (from the store row)
}

func (s *Server) checkpointPath(sha string) string {
	return filepath.Join(s.cfg.DataDir, "checkpoints", sha+".mem")
}

// checkpoint writes p's memory and position (p.mu held).
func (s *Server) checkpoint(ctx context.Context, p *proc) error {
	if p.inst == nil {
		return nil
	}
	publish := s.cfg.PublishInterval > 0 && s.signer != nil && time.Since(p.pubAt) >= s.cfg.PublishInterval &&
		p.pos.Nonce >= 0 && p.pos.Ordinate == p.pos.Nonce
	if p.dirty == 0 && !publish && !p.side {
		// Nothing evaluated since the instance came from its checkpoint:
		// no need to hash and write the same memory again.
		if st, ok := s.localCheckpoint(ctx, p.info.pid); ok && st.Pos == p.pos {
			return nil
		}
	}
	// (Ordinate differs from Nonce only after a deduplicated message; such a
	// position cannot be told in the reference's tags.)
	var (
		sha  string
		size int
		mem  []byte // a copy, for publishing
	)
	// The memory is written out in place: a copy of 100 MB costs more in
	// page faults than the rest of the checkpoint.
	var full string // the reference's SHA-256 of the whole memory, to publish
	err := p.inst.View(func(view []byte, untouched []bool) error {
		bitmap, nonZero := sparseLayout(view, untouched)
		sha, size = sparseDigest(view, bitmap, nonZero), len(view)
		if _, err := os.Stat(s.checkpointPath(sha)); err != nil {
			if err := writeMemoryFile(s.checkpointPath(sha), view, bitmap, nonZero); err != nil {
				return err
			}
		}
		if publish {
			sum := memorySum(view, untouched)
			full = hex.EncodeToString(sum[:])
			mem = bytes.Clone(view)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Shared storage first: the row must never name a file others cannot get.
	if err := s.uploadCheckpoint(ctx, sha); err != nil {
		return err
	}
	oldSHA, _, had, err := s.store.checkpoint(ctx, p.info.pid)
	if err != nil {
		return err
	}
	state, _ := json.Marshal(checkpointState{Pos: p.pos, Size: size})
	if err := s.store.putCheckpoint(context.WithoutCancel(ctx), p.info.pid, sha, state); err != nil {
		return err
	}
	if had && oldSHA != sha {
		os.Remove(s.checkpointPath(oldSHA))
	}
	p.dirty = 0
	s.metrics.checkpoints.Add(1)
	if publish {
		p.pubAt = time.Now()
		snap := &proc{info: p.info, pos: p.pos}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := s.publish(snap, mem, full); err != nil {
				s.log.Warn("publishing checkpoint failed", "process", snap.info.pid, "err", err)
			}
		}()
	}
	return nil
}

// publish uploads p's checkpoint unless Q7 finds it published already.
func (s *Server) publish(p *proc, mem []byte, sha string) error {
	if cg, ok := s.gw.(CheckpointGateway); ok && s.cfg.Address != "" {
		exists, err := cg.CheckpointExists(s.ctx, s.cfg.Address, p.info.pid, itoa(p.pos.Timestamp), itoa(p.pos.Ordinate), p.pos.Cron)
		if err != nil {
			s.log.Warn("checking for a published checkpoint failed; publishing", "process", p.info.pid, "err", err)
		} else if exists {
			s.metrics.publishSkipped.Add(1)
			return nil
		}
	}
	item, err := s.checkpointItem(p, mem, sha)
	if err != nil {
		return err
	}
	if err := s.gw.Upload(s.ctx, item); err != nil {
		return err
	}
	s.metrics.published.Add(1)
	return nil
}

// checkpointItem builds the reference's Checkpoint data item (units.md §5.11).
func (s *Server) checkpointItem(p *proc, mem []byte, sha string) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(mem)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	pos := p.pos
	tags := []ans104.Tag{
		{Name: "Data-Protocol", Value: "ao"}, {Name: "Variant", Value: "ao.TN.1"}, {Name: "Type", Value: "Checkpoint"},
		{Name: "Module", Value: p.info.moduleID}, {Name: "Process", Value: p.info.pid},
		{Name: "Nonce", Value: itoa(pos.Ordinate)}, {Name: "Timestamp", Value: itoa(pos.Timestamp)},
		{Name: "Block-Height", Value: itoa(pos.Height)}, {Name: "Content-Type", Value: "application/octet-stream"},
		{Name: "SHA-256", Value: sha}, {Name: "Content-Encoding", Value: "gzip"}, {Name: "Unit-Identifier", Value: s.unitID},
		{Name: "Ordinate", Value: itoa(pos.Ordinate)},
	}
	if pos.Assignment != "" {
		tags = append(tags, ans104.Tag{Name: "Assignment", Value: pos.Assignment}, ans104.Tag{Name: "Hash-Chain", Value: pos.HashChain},
			ans104.Tag{Name: "Epoch", Value: strconv.FormatInt(pos.Epoch, 10)})
	}
	if pos.Cron != "" {
		tags = append(tags, ans104.Tag{Name: "Cron-Interval", Value: pos.Cron})
	}
	it, err := ans104.Sign(s.signer, buf.Bytes(), ans104.Options{Tags: tags})
	if err != nil {
		return nil, fmt.Errorf("cu: sign checkpoint: %w", err)
	}
	return it.Bytes(), nil
}

// localCheckpoint returns the state saved with pid's file checkpoint.
func (s *Server) localCheckpoint(ctx context.Context, pid string) (checkpointState, bool) {
	sha, state, ok, err := s.store.checkpoint(ctx, pid)
	if err != nil || !ok {
		return checkpointState{}, false
	}
	var st checkpointState
	if err := json.Unmarshal(state, &st); err != nil {
		return checkpointState{}, false
	}
	st.sha = sha
	return st, true
}

// restore loads the file checkpoint st of p into a new instance; ok is
// false when it is unusable (then the caller tries the next tier).
func (s *Server) restore(ctx context.Context, p *proc, cfg wasm.Config, st checkpointState) (*wasm.Instance, position, bool) {
	if err := s.fetchCheckpoint(ctx, st); err != nil {
		s.log.Warn("shared checkpoint unavailable", "process", p.info.pid, "err", err)
		return nil, position{}, false
	}
	im, err := readMemoryFile(s.checkpointPath(st.sha), st.Size, st.sha)
	if err != nil {
		s.log.Warn("checkpoint unusable", "process", p.info.pid, "err", err)
		return nil, position{}, false
	}
	inst, err := p.info.module.RestoreImage(ctx, cfg, im)
	if err != nil {
		s.log.Warn("checkpoint restore failed", "process", p.info.pid, "err", err)
		return nil, position{}, false
	}
	return inst, st.Pos, true
}

// enforceBudget evicts least recently used instances (checkpointing them)
// while live memory exceeds the budget. Busy processes are skipped.
func (s *Server) enforceBudget(ctx context.Context) {
	if s.cfg.MemoryBudget <= 0 {
		return
	}
	// An eviction finishes even when the request that caused it is gone: a
	// half-done one leaves an orphan checkpoint and the budget exceeded.
	ctx = context.WithoutCancel(ctx)
	s.mu.Lock()
	var live []*proc
	var total uint64
	for _, p := range s.procs {
		if p.size > 0 {
			live = append(live, p)
			total += p.size
		}
	}
	s.mu.Unlock()
	sort.Slice(live, func(i, j int) bool { return live[i].lastUse.Before(live[j].lastUse) })
	for _, p := range live {
		if total <= uint64(s.cfg.MemoryBudget) {
			return
		}
		if !p.mu.TryLock() {
			continue
		}
		if p.inst != nil {
			if err := s.checkpoint(ctx, p); err != nil {
				s.log.Warn("evict: checkpoint failed", "process", p.info.pid, "err", err)
				p.mu.Unlock()
				continue
			}
			p.inst.Close(ctx)
			p.inst = nil
			s.metrics.evictions.Add(1)
		}
		s.mu.Lock()
		total -= p.size
		p.size = 0
		s.mu.Unlock()
		p.mu.Unlock()
	}
}
