package cu

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aonode/aonode/cu/wasm"
)

// The Arweave checkpoint tier (units.md §5.11): Checkpoint data items that
// trusted CUs published are found with GraphQL Q6, downloaded from /raw,
// gunzipped, checked against their SHA-256 tag and restored; evaluation then
// continues from the position their tags give. A candidate that fails any
// step is skipped for the next one, and a cold start ends the list.

// CheckpointGateway is implemented by a Gateway that can search published
// Checkpoint items (HTTPGateway does). Without it the Arweave tier is off.
type CheckpointGateway interface {
	// Checkpoints runs gateway.md Q6: up to limit Checkpoint items of pid
	// signed by one of owners, newest block first.
	Checkpoints(ctx context.Context, owners []string, pid string, limit int) ([]Tx, error)
	// CheckpointExists runs gateway.md Q7: whether owner already published
	// the checkpoint of pid at (timestamp, nonce[, cron]).
	CheckpointExists(ctx context.Context, owner, pid, timestamp, nonce, cron string) (bool, error)
}

// Checkpoints implements CheckpointGateway (gateway.md Q6, verbatim).
func (g *HTTPGateway) Checkpoints(ctx context.Context, owners []string, pid string, limit int) ([]Tx, error) {
	const q = `query GetAoProcessCheckpoints($owners: [String!]!, $processId: String!, $limit: Int!) {
  transactions(
    tags: [
      { name: "Process", values: [$processId] }
      { name: "Type", values: ["Checkpoint"] }
      { name: "Data-Protocol", values: ["ao"] }
    ],
    owners: $owners,
    first: $limit,
    sort: HEIGHT_DESC
  ) { edges { node { id owner { address } tags { name value } } } }
}`
	var out gqlTxs
	if err := g.graphql(ctx, q, map[string]any{"owners": owners, "processId": pid, "limit": limit}, &out); err != nil {
		return nil, err
	}
	txs := make([]Tx, 0, len(out.Transactions.Edges))
	for _, e := range out.Transactions.Edges {
		txs = append(txs, Tx{ID: e.Node.ID, Owner: e.Node.Owner.Address, Tags: e.Node.Tags})
	}
	return txs, nil
}

// CheckpointExists implements CheckpointGateway (gateway.md Q7, verbatim).
func (g *HTTPGateway) CheckpointExists(ctx context.Context, owner, pid, timestamp, nonce, cron string) (bool, error) {
	vars := map[string]any{"owner": owner, "processId": pid, "timestamp": timestamp, "nonce": nonce}
	cronVar, cronTag := "", ""
	if cron != "" {
		vars["cron"] = cron
		cronVar, cronTag = `, $cron: String!`, `
      { name: "Cron-Interval", values: [$cron] }`
	}
	q := `query GetAoProcessCheckpoint($owner: String!, $processId: String!, $timestamp: String!, $nonce: String!` + cronVar + `) {
  transactions(
    tags: [
      { name: "Process", values: [$processId] }
      { name: "Nonce", values: [$nonce] }
      { name: "Timestamp", values: [$timestamp] }` + cronTag + `
      { name: "Type", values: ["Checkpoint"] }
      { name: "Data-Protocol", values: ["ao"] }
    ],
    owners: [$owner],
    first: 1
  ) { edges { node { id owner { address } tags { name value } } } }
}`
	var out gqlTxs
	if err := g.graphql(ctx, q, vars, &out); err != nil {
		return false, err
	}
	return len(out.Transactions.Edges) > 0, nil
}

// arweaveCheckpoints reports whether the Arweave tier is on.
func (s *Server) arweaveCheckpoints() bool {
	if s.cfg.IgnoreArweaveCheckpoints || len(s.cfg.CheckpointOwners) == 0 {
		return false
	}
	_, ok := s.gw.(CheckpointGateway)
	return ok
}

// published is a Checkpoint item found with Q6.
type published struct {
	id   string
	pos  position
	sha  string
	gzip bool
}

// parsePublished reads the position a Checkpoint item's tags give. The
// reference's tags name the last evaluation (Nonce, Timestamp, Cron-Interval)
// and the last scheduled assignment (Assignment, Hash-Chain, Epoch), which is
// what continuing needs: the next SU page starts after Timestamp, and the
// next message's Hash-Chain is verified against Assignment.
func parsePublished(info *procInfo, tx Tx) (published, error) {
	get := func(n string) string { v, _ := tagValue(tx.Tags, n); return v }
	c := published{id: tx.ID, sha: strings.ToLower(get("SHA-256")), gzip: strings.EqualFold(get("Content-Encoding"), "gzip")}
	if v := get("Type"); v != "Checkpoint" {
		return c, fmt.Errorf("Type is %q", v)
	}
	if v := get("Process"); v != info.pid {
		return c, fmt.Errorf("Process is %q", v)
	}
	if v := get("Module"); v != "" && v != info.moduleID {
		return c, fmt.Errorf("Module is %s, the process runs %s", v, info.moduleID)
	}
	num := func(name string, def int64) (int64, error) {
		v := get(name)
		if v == "" && def >= 0 {
			return def, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad %s %q", name, v)
		}
		return n, nil
	}
	nonce, err1 := num("Nonce", -1)
	ts, err2 := num("Timestamp", -1)
	height, err3 := num("Block-Height", -1)
	epoch, err4 := num("Epoch", 0)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return c, err
	}
	if b, err := hex.DecodeString(c.sha); err != nil || len(b) != sha256.Size {
		return c, fmt.Errorf("bad SHA-256 %q", c.sha)
	}
	assignment, hashChain := get("Assignment"), get("Hash-Chain")
	if assignment == "" || hashChain == "" {
		return c, errors.New("no Assignment and Hash-Chain to continue the schedule from")
	}
	c.pos = position{SUCursor: strconv.FormatInt(ts, 10), Nonce: nonce, Epoch: epoch, Assignment: assignment, HashChain: hashChain,
		LeftTS: ts, Height: height, CronNext: ts, Timestamp: ts, Ordinate: nonce, Injected: true}
	if cron := get("Cron-Interval"); cron != "" {
		i := slices.IndexFunc(info.crons, func(cs cronSpec) bool { return cs.ID == cron })
		if i < 0 {
			return c, fmt.Errorf("the process has no cron %q", cron)
		}
		if info.crons[i].Blocks > 0 {
			// The tick a block-based cron fired at is not in the tags.
			return c, fmt.Errorf("cannot continue after block-based cron %q", cron)
		}
		// Time-based ticks are one second apart: the next is ts + 1 s. The
		// next scheduled message is later than any cron tick before it.
		c.pos.Cron, c.pos.CronNext = cron, ts+1000
	}
	return c, nil
}

// newer orders evaluation positions.
func newer(a, b position) bool {
	return a.Timestamp > b.Timestamp || a.Timestamp == b.Timestamp && a.Ordinate > b.Ordinate
}

// restoreArweave restores the newest published checkpoint that tgt admits
// and that is newer than local (when given).
func (s *Server) restoreArweave(ctx context.Context, p *proc, cfg wasm.Config, tgt target, local *position) (*wasm.Instance, position, bool) {
	if !p.side {
		p.arweaveAsk = true
	}
	txs, err := s.gw.(CheckpointGateway).Checkpoints(ctx, s.cfg.CheckpointOwners, p.info.pid, 50)
	if err != nil {
		s.log.Warn("looking up published checkpoints failed", "process", p.info.pid, "err", err)
		return nil, position{}, false
	}
	var cands []published
	for _, tx := range txs {
		if !slices.Contains(s.cfg.CheckpointOwners, tx.Owner) {
			continue
		}
		c, err := parsePublished(p.info, tx)
		if err != nil {
			s.log.Warn("published checkpoint skipped", "process", p.info.pid, "checkpoint", tx.ID, "err", err)
			s.metrics.arweaveRejected.Add(1)
			continue
		}
		if tgt.admits(c.pos) && (local == nil || newer(c.pos, *local)) {
			cands = append(cands, c)
		}
	}
	// The reference sorts by Nonce; cron checkpoints share their ordinate,
	// so the timestamp orders first.
	sort.SliceStable(cands, func(i, j int) bool { return newer(cands[i].pos, cands[j].pos) })
	for _, c := range cands {
		mem, err := s.downloadCheckpoint(ctx, c)
		var inst *wasm.Instance
		if err == nil {
			inst, err = p.info.module.RestoreOwned(ctx, cfg, mem)
		}
		if ctx.Err() != nil {
			if inst != nil {
				inst.Close(context.WithoutCancel(ctx))
			}
			return nil, position{}, false
		}
		if err != nil {
			s.log.Warn("published checkpoint skipped", "process", p.info.pid, "checkpoint", c.id, "err", err)
			s.metrics.arweaveRejected.Add(1)
			continue
		}
		s.metrics.arweaveRestores.Add(1)
		s.log.Info("restored a published checkpoint", "process", p.info.pid, "checkpoint", c.id,
			"nonce", c.pos.Ordinate, "timestamp", c.pos.Timestamp)
		return inst, c.pos, true
	}
	return nil, position{}, false
}

// downloadCheckpoint fetches, decodes and checks a published memory.
func (s *Server) downloadCheckpoint(ctx context.Context, c published) ([]byte, error) {
	b, err := s.gw.Raw(ctx, c.id)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	// A gateway may send the item with Content-Encoding: gzip, which the
	// HTTP client then decodes already; the hash below tells.
	if c.gzip && len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		mem, err := io.ReadAll(io.LimitReader(zr, s.cfg.MaxMemory+1))
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		if int64(len(mem)) > s.cfg.MaxMemory {
			return nil, fmt.Errorf("memory exceeds %d bytes", s.cfg.MaxMemory)
		}
		b = mem
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != c.sha {
		return nil, fmt.Errorf("SHA-256 of the memory is %x, the tag says %s", sum, c.sha)
	}
	return b, nil
}
