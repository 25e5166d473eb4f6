package cu

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/aonode/aonode/internal/sqlite"
)

// store keeps evaluation results and the latest checkpoint of each process in
// SQLite (one writer connection, WAL, synchronous=FULL; readers in parallel).
// Results are keyed as the reference CU keys them: process, timestamp,
// ordinate (nonce) and cron id ("" for scheduled messages).
type store struct {
	d    *sqlite.DB
	w, r *sql.DB // d's writer connection and read pool
}

// evalRow is one stored evaluation.
type evalRow struct {
	Process   string
	Timestamp int64
	Ordinate  int64
	Cron      string
	MessageID string // "" for cron
	Nonce     int64  // -1 for cron
	Height    int64
	IsError   bool
	Result    []byte     // /result JSON
	Attest    *attestRow // nil: no attestation (attestations off)
	Charge    *chargeRow // nil: free
}

func openStore(ctx context.Context, dir string) (*store, error) {
	const schema = `
CREATE TABLE IF NOT EXISTS evaluations (
	process TEXT NOT NULL, timestamp INTEGER NOT NULL, ordinate INTEGER NOT NULL, cron TEXT NOT NULL,
	message_id TEXT NOT NULL, nonce INTEGER NOT NULL, block_height INTEGER NOT NULL,
	is_error INTEGER NOT NULL, result BLOB NOT NULL,
	PRIMARY KEY (process, timestamp, ordinate, cron)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS evaluations_message ON evaluations (process, message_id);
CREATE INDEX IF NOT EXISTS evaluations_failed ON evaluations (process) WHERE is_error=1;
CREATE TABLE IF NOT EXISTS checkpoints (
	process TEXT PRIMARY KEY, sha256 TEXT NOT NULL, state BLOB NOT NULL);` + marketSchema
	d, err := sqlite.Open(ctx, filepath.Join(dir, "cu.db"), schema, 8)
	if err != nil {
		return nil, fmt.Errorf("cu: store: %w", err)
	}
	// Results are written in batches by one evaluator at a time per process;
	// they use the writer connection directly.
	return &store{d: d, w: d.Writer(), r: d.Read}, nil
}

func (s *store) Close() error { return s.d.Close() }

// putEvals stores a batch of evaluations in one transaction. A repeated key
// (a replay after a restart) overwrites: evaluation is deterministic.
func (s *store) putEvals(ctx context.Context, rows []evalRow) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cu: store results: %w", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO evaluations VALUES (?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("cu: store results: %w", err)
	}
	for _, e := range rows {
		if _, err := st.ExecContext(ctx, e.Process, e.Timestamp, e.Ordinate, e.Cron, e.MessageID, e.Nonce, e.Height, e.IsError, e.Result); err != nil {
			return fmt.Errorf("cu: store results: %w", err)
		}
	}
	if err := s.putAttests(ctx, tx, rows); err != nil {
		return fmt.Errorf("cu: store attestations: %w", err)
	}
	var charges []chargeRow
	for _, e := range rows {
		if e.Charge != nil {
			charges = append(charges, *e.Charge)
		}
	}
	if err := s.putCharges(ctx, tx, charges); err != nil {
		return fmt.Errorf("cu: store charges: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cu: store results: %w", err)
	}
	return nil
}

// resultByMessage returns the stored result of a scheduled message.
func (s *store) resultByMessage(ctx context.Context, pid, msgID string) ([]byte, bool, error) {
	var b []byte
	err := s.r.QueryRowContext(ctx, `SELECT result FROM evaluations WHERE process=? AND message_id=? AND cron='' ORDER BY timestamp, ordinate LIMIT 1`, pid, msgID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cu: read result: %w", err)
	}
	return b, true, nil
}

// resultAt returns the stored result of the message scheduled at nonce (the
// primary key: a scheduled message's ordinate is its nonce).
func (s *store) resultAt(ctx context.Context, pid string, ts, nonce int64) ([]byte, bool, error) {
	var b []byte
	err := s.r.QueryRowContext(ctx, `SELECT result FROM evaluations WHERE process=? AND timestamp=? AND ordinate=? AND cron=''`, pid, ts, nonce).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cu: read result: %w", err)
	}
	return b, true, nil
}

// failed returns the nonces of pid's scheduled messages whose stored result
// is a failure (the partial index evaluations_failed holds just those).
func (s *store) failed(ctx context.Context, pid string) (map[int64]bool, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT ordinate FROM evaluations WHERE process=? AND cron='' AND is_error=1`, pid)
	if err != nil {
		return nil, fmt.Errorf("cu: read failed results: %w", err)
	}
	defer rows.Close()
	var out map[int64]bool
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("cu: read failed results: %w", err)
		}
		if out == nil {
			out = map[int64]bool{}
		}
		out[n] = true
	}
	return out, rows.Err()
}

// evaluatedBefore reports whether msgID was already evaluated for pid at a
// nonce below nonce (the reference's evaluation-stream dedupe, units.md §5.8).
func (s *store) evaluatedBefore(ctx context.Context, pid, msgID string, nonce int64) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM evaluations WHERE process=? AND message_id=? AND cron='' AND nonce<?`, pid, msgID, nonce).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("cu: dedupe: %w", err)
	}
	return n > 0, nil
}

// rangeQuery selects evaluations for /results and /cron: between Lo and Hi,
// each bound inclusive or not.
type rangeQuery struct {
	Process        string
	Lo, Hi         *Cursor
	LoIncl, HiIncl bool
	Desc           bool
	Limit          int
	CronOnly       bool
}

func (s *store) evals(ctx context.Context, q rangeQuery) ([]evalRow, bool, error) {
	where := "process=? AND is_error=0"
	args := []any{q.Process}
	if q.CronOnly {
		where += " AND cron<>''"
	}
	bound := func(c *Cursor, op string) {
		if c.Bare {
			where += " AND timestamp" + op + "?"
			args = append(args, c.Timestamp)
		} else {
			where += " AND (timestamp,ordinate,cron)" + op + "(?,?,?)"
			args = append(args, c.Timestamp, c.Ordinate, c.Cron)
		}
	}
	if q.Lo != nil {
		bound(q.Lo, map[bool]string{false: ">", true: ">="}[q.LoIncl])
	}
	if q.Hi != nil {
		bound(q.Hi, map[bool]string{false: "<", true: "<="}[q.HiIncl])
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	args = append(args, q.Limit+1)
	rows, err := s.r.QueryContext(ctx, `SELECT timestamp, ordinate, cron, message_id, nonce, block_height, result FROM evaluations WHERE `+where+
		` ORDER BY timestamp `+order+`, ordinate `+order+`, cron `+order+` LIMIT ?`, args...)
	if err != nil {
		return nil, false, fmt.Errorf("cu: read results: %w", err)
	}
	defer rows.Close()
	var out []evalRow
	for rows.Next() {
		e := evalRow{Process: q.Process}
		if err := rows.Scan(&e.Timestamp, &e.Ordinate, &e.Cron, &e.MessageID, &e.Nonce, &e.Height, &e.Result); err != nil {
			return nil, false, fmt.Errorf("cu: read results: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("cu: read results: %w", err)
	}
	more := len(out) > q.Limit
	if more {
		out = out[:q.Limit]
	}
	return out, more, nil
}

func (s *store) putCheckpoint(ctx context.Context, pid, sha string, state []byte) error {
	_, err := s.w.ExecContext(ctx, `INSERT OR REPLACE INTO checkpoints VALUES (?,?,?)`, pid, sha, state)
	if err != nil {
		return fmt.Errorf("cu: store checkpoint: %w", err)
	}
	return nil
}

func (s *store) checkpoint(ctx context.Context, pid string) (sha string, state []byte, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT sha256, state FROM checkpoints WHERE process=?`, pid).Scan(&sha, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("cu: read checkpoint: %w", err)
	}
	return sha, state, true, nil
}
