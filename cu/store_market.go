package cu

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aonode/aonode/internal/sqldb"
)

// The attestation and market tables live beside the evaluations, in the
// same database, and are written in the same transactions: a result, its
// attestation fields and its charge are stored together or not at all, so a
// crash loses no charge and charges no lost result.
const marketSchema = `
CREATE TABLE IF NOT EXISTS attests (
	process TEXT NOT NULL, timestamp INTEGER NOT NULL, ordinate INTEGER NOT NULL, cron TEXT NOT NULL,
	message_id TEXT NOT NULL, nonce INTEGER NOT NULL, assignment TEXT NOT NULL, hash_chain TEXT NOT NULL,
	result_sha TEXT NOT NULL, memory_sha TEXT NOT NULL, fuel INTEGER NOT NULL, gas INTEGER NOT NULL,
	item_id TEXT, item BLOB, published INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (process, timestamp, ordinate, cron)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attests_message ON attests (process, message_id);
CREATE INDEX IF NOT EXISTS attests_item ON attests (item_id) WHERE item_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS attests_unpublished ON attests (process) WHERE published=0 AND item_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS charges (
	seq INTEGER PRIMARY KEY AUTOINCREMENT, payer TEXT NOT NULL, process TEXT NOT NULL, kind TEXT NOT NULL,
	ref TEXT NOT NULL, amount INTEGER NOT NULL, messages INTEGER NOT NULL, fuel INTEGER NOT NULL,
	wall_us INTEGER NOT NULL, memory INTEGER NOT NULL, at INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS charges_ref ON charges (kind, process, ref);
CREATE INDEX IF NOT EXISTS charges_process ON charges (process, payer);
CREATE INDEX IF NOT EXISTS charges_payer ON charges (payer);
CREATE TABLE IF NOT EXISTS credits (
	ref TEXT PRIMARY KEY, ledger TEXT NOT NULL, address TEXT NOT NULL, amount INTEGER NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS credits_address ON credits (address);
CREATE TABLE IF NOT EXISTS ledger_cursor (
	ledger TEXT PRIMARY KEY, timestamp INTEGER NOT NULL, ordinate INTEGER NOT NULL, cron TEXT NOT NULL);`

// attestRow is what an attestation states about one evaluation, computed as
// it is evaluated; the signed item is made from it when first asked for.
type attestRow struct {
	MessageID            string
	Nonce                int64
	Assignment           string
	HashChain            string
	ResultSHA, MemorySHA string
	Fuel, Gas            uint64
	// Key of the evaluation (read back only).
	Process   string
	Timestamp int64
	Ordinate  int64
	Cron      string
	ItemID    string
	Item      []byte
}

// chargeRow is one debit of a payer's balance. ref identifies what was paid
// for (a slot, a dry-run, a verification), so a replay never charges twice.
type chargeRow struct {
	Payer, Process, Kind, Ref string
	Amount                    int64
	Messages                  int64
	Fuel                      uint64
	Wall                      time.Duration
	Memory                    uint64
}

func (s *store) putAttests(ctx context.Context, tx *sqldb.Tx, rows []evalRow) error {
	st, err := tx.Prepare(ctx, `INSERT INTO attests (process,timestamp,ordinate,cron,message_id,nonce,assignment,hash_chain,result_sha,memory_sha,fuel,gas)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (process,timestamp,ordinate,cron) DO UPDATE SET message_id=excluded.message_id, nonce=excluded.nonce,
	assignment=excluded.assignment, hash_chain=excluded.hash_chain, fuel=excluded.fuel, gas=excluded.gas,
	item_id=CASE WHEN attests.result_sha=excluded.result_sha AND attests.memory_sha=excluded.memory_sha THEN attests.item_id END,
	item=CASE WHEN attests.result_sha=excluded.result_sha AND attests.memory_sha=excluded.memory_sha THEN attests.item END,
	result_sha=excluded.result_sha, memory_sha=excluded.memory_sha`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, e := range rows {
		a := e.Attest
		if a == nil {
			continue
		}
		if _, err := st.ExecContext(ctx, e.Process, e.Timestamp, e.Ordinate, e.Cron, e.MessageID, a.Nonce, a.Assignment, a.HashChain,
			a.ResultSHA, a.MemorySHA, int64(a.Fuel), int64(a.Gas)); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) putCharges(ctx context.Context, tx *sqldb.Tx, rows []chargeRow) error {
	if len(rows) == 0 {
		return nil
	}
	st, err := tx.Prepare(ctx, `INSERT INTO charges (payer,process,kind,ref,amount,messages,fuel,wall_us,memory,at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UnixMilli()
	for _, c := range rows {
		if _, err := st.ExecContext(ctx, c.Payer, c.Process, c.Kind, c.Ref, c.Amount, c.Messages, int64(c.Fuel), c.Wall.Microseconds(), int64(c.Memory), now); err != nil {
			return err
		}
	}
	return nil
}

// charge stores one charge on its own (a dry-run, a verification).
func (s *store) charge(ctx context.Context, c chargeRow) error {
	if err := s.write(ctx, func(tx *sqldb.Tx) error { return s.putCharges(ctx, tx, []chargeRow{c}) }); err != nil {
		return fmt.Errorf("cu: store charge: %w", err)
	}
	return nil
}

const attestCols = `process, timestamp, ordinate, cron, message_id, nonce, assignment, hash_chain, result_sha, memory_sha, fuel, gas, coalesce(item_id,''), item`

func scanAttest(sc interface{ Scan(...any) error }) (*attestRow, error) {
	var a attestRow
	var fuel, gas int64
	err := sc.Scan(&a.Process, &a.Timestamp, &a.Ordinate, &a.Cron, &a.MessageID, &a.Nonce, &a.Assignment, &a.HashChain,
		&a.ResultSHA, &a.MemorySHA, &fuel, &gas, &a.ItemID, &a.Item)
	a.Fuel, a.Gas = uint64(fuel), uint64(gas)
	return &a, err
}

// attestWhere returns the attestation fields of the one evaluation the
// condition selects, nil when none.
func (s *store) attestWhere(ctx context.Context, cond string, args ...any) (*attestRow, error) {
	a, err := scanAttest(s.r.QueryRow(ctx, `SELECT `+attestCols+` FROM attests WHERE `+cond, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cu: read attestation: %w", err)
	}
	return a, nil
}

// attestByMessage finds the attestation fields of a scheduled message's
// evaluation (its first slot, as resultByMessage).
func (s *store) attestByMessage(ctx context.Context, pid, msgID string) (*attestRow, error) {
	return s.attestWhere(ctx, `process=? AND message_id=? AND cron='' ORDER BY timestamp, ordinate LIMIT 1`, pid, msgID)
}

// attestAtSlot finds the attestation fields of the message at nonce.
func (s *store) attestAtSlot(ctx context.Context, pid string, nonce int64) (*attestRow, error) {
	return s.attestWhere(ctx, `process=? AND nonce=? AND cron='' LIMIT 1`, pid, nonce)
}

// setAttestItem stores the signed item of an attestation unless another
// request stored one first; it returns the item that stands.
func (s *store) setAttestItem(ctx context.Context, a *attestRow, id string, item []byte) (string, []byte, error) {
	err := s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`UPDATE attests SET item_id=?, item=? WHERE process=? AND timestamp=? AND ordinate=? AND cron=? AND item_id IS NULL AND result_sha=? AND memory_sha=?`,
			id, item, a.Process, a.Timestamp, a.Ordinate, a.Cron, a.ResultSHA, a.MemorySHA)
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("cu: store attestation: %w", err)
	}
	var gotID string
	var got []byte
	err = s.r.QueryRow(ctx, `SELECT coalesce(item_id,''), item FROM attests WHERE process=? AND timestamp=? AND ordinate=? AND cron=?`,
		a.Process, a.Timestamp, a.Ordinate, a.Cron).Scan(&gotID, &got)
	if err != nil {
		return "", nil, fmt.Errorf("cu: read attestation: %w", err)
	}
	if gotID == "" {
		return id, item, nil // re-evaluated meanwhile with other hashes: what we signed is still what was asked
	}
	return gotID, got, nil
}

// attestsWhere lists the attestation fields the condition selects.
func (s *store) attestsWhere(ctx context.Context, cond string, args ...any) ([]*attestRow, error) {
	rows, err := s.r.Query(ctx, `SELECT `+attestCols+` FROM attests WHERE `+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("cu: read attestations: %w", err)
	}
	defer rows.Close()
	var out []*attestRow
	for rows.Next() {
		a, err := scanAttest(rows)
		if err != nil {
			return nil, fmt.Errorf("cu: read attestations: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// unsignedAttests lists up to n attestations without a signed item (for the
// publisher), oldest first per process.
func (s *store) unsignedAttests(ctx context.Context, n int) ([]*attestRow, error) {
	return s.attestsWhere(ctx, `item_id IS NULL AND published=0 ORDER BY process, timestamp, ordinate LIMIT ?`, n)
}

// unpublishedAttests lists up to n signed attestations not yet uploaded.
func (s *store) unpublishedAttests(ctx context.Context, n int) ([]*attestRow, error) {
	return s.attestsWhere(ctx, `published=0 AND item_id IS NOT NULL LIMIT ?`, n)
}

// markUnsignable sets an attestation aside (published = -1) that cannot be
// signed, so that it does not hold up the ones after it.
func (s *store) markUnsignable(ctx context.Context, a *attestRow) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`UPDATE attests SET published=-1 WHERE process=? AND timestamp=? AND ordinate=? AND cron=?`, a.Process, a.Timestamp, a.Ordinate, a.Cron)
		return err
	})
}

func (s *store) markPublished(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`UPDATE attests SET published=1 WHERE item_id=?`, id)
		return err
	})
}

// balance is what address has paid in minus what it was charged.
func (s *store) balance(ctx context.Context, address string) (credited, charged int64, err error) {
	err = s.r.QueryRow(ctx, `SELECT (SELECT CAST(coalesce(sum(amount),0) AS BIGINT) FROM credits WHERE address=?), (SELECT CAST(coalesce(sum(amount),0) AS BIGINT) FROM charges WHERE payer=?)`,
		address, address).Scan(&credited, &charged)
	if err != nil {
		return 0, 0, fmt.Errorf("cu: read balance: %w", err)
	}
	return credited, charged, nil
}

// Usage is what a process used and was charged, per paying wallet.
type Usage struct {
	Payer         string `json:"payer"`
	Messages      int64  `json:"messages"`
	Fuel          int64  `json:"fuel"`
	WallMS        int64  `json:"wallMs"`
	MemoryMax     int64  `json:"memoryMax"`
	DryRuns       int64  `json:"dryRuns"`
	Verifications int64  `json:"verifications"`
	Charged       string `json:"charged"`
}

func (s *store) usage(ctx context.Context, pid string) ([]Usage, error) {
	rows, err := s.r.Query(ctx, `SELECT payer, CAST(sum(messages) AS BIGINT), CAST(sum(fuel) AS BIGINT), CAST(sum(wall_us)/1000 AS BIGINT), max(memory),
	CAST(sum(CASE WHEN kind='dry-run' THEN 1 ELSE 0 END) AS BIGINT), CAST(sum(CASE WHEN kind='verify' THEN 1 ELSE 0 END) AS BIGINT),
	CAST(sum(amount) AS BIGINT) FROM charges WHERE process=? GROUP BY payer ORDER BY payer`, pid)
	if err != nil {
		return nil, fmt.Errorf("cu: read usage: %w", err)
	}
	defer rows.Close()
	out := []Usage{}
	for rows.Next() {
		var u Usage
		var amount int64
		if err := rows.Scan(&u.Payer, &u.Messages, &u.Fuel, &u.WallMS, &u.MemoryMax, &u.DryRuns, &u.Verifications, &amount); err != nil {
			return nil, fmt.Errorf("cu: read usage: %w", err)
		}
		u.Charged = fmt.Sprint(amount)
		out = append(out, u)
	}
	return out, rows.Err()
}

// ledgerCursor is the last ledger evaluation scanned for payments.
func (s *store) ledgerCursor(ctx context.Context, ledger string) (*Cursor, error) {
	var c Cursor
	err := s.r.QueryRow(ctx, `SELECT timestamp, ordinate, cron FROM ledger_cursor WHERE ledger=?`, ledger).Scan(&c.Timestamp, &c.Ordinate, &c.Cron)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cu: read ledger cursor: %w", err)
	}
	return &c, nil
}

// credit is one payment read from the ledger.
type credit struct {
	Ref, Address string
	Amount       int64
}

// putCredits stores payments and moves the ledger cursor in one transaction;
// a payment already stored (same ref) is not counted twice.
func (s *store) putCredits(ctx context.Context, ledger string, cur Cursor, cs []credit) error {
	now := time.Now().UnixMilli()
	return s.write(ctx, func(tx *sqldb.Tx) error {
		for _, c := range cs {
			if _, err := tx.Exec(`INSERT INTO credits VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING`, c.Ref, ledger, c.Address, c.Amount, now); err != nil {
				return fmt.Errorf("cu: store credits: %w", err)
			}
		}
		if _, err := tx.Exec(`INSERT INTO ledger_cursor VALUES (?,?,?,?) ON CONFLICT (ledger) DO UPDATE SET timestamp=excluded.timestamp,
	ordinate=excluded.ordinate, cron=excluded.cron`, ledger, cur.Timestamp, cur.Ordinate, cur.Cron); err != nil {
			return fmt.Errorf("cu: store credits: %w", err)
		}
		return nil
	})
}

// averageFuel is the mean fuel of pid's charged messages (0 when none).
func (s *store) averageFuel(ctx context.Context, pid string) (uint64, error) {
	var avg float64
	err := s.r.QueryRow(ctx, `SELECT CAST(coalesce(avg(fuel),0) AS DOUBLE PRECISION) FROM charges WHERE process=? AND kind='message'`, pid).Scan(&avg)
	if err != nil {
		return 0, fmt.Errorf("cu: read usage: %w", err)
	}
	return uint64(avg), nil
}

// lastNonce is the highest nonce of pid with a stored result (-1: none).
func (s *store) lastNonce(ctx context.Context, pid string) (int64, error) {
	var n int64
	err := s.r.QueryRow(ctx, `SELECT coalesce(max(nonce),-1) FROM evaluations WHERE process=? AND cron=''`, pid).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("cu: read results: %w", err)
	}
	return n, nil
}

// cronResult returns the stored result of a cron evaluation.
func (s *store) cronResult(ctx context.Context, pid string, ts, ordinate int64, cron string) ([]byte, bool, error) {
	var b []byte
	err := s.r.QueryRow(ctx, `SELECT result FROM evaluations WHERE process=? AND timestamp=? AND ordinate=? AND cron=?`, pid, ts, ordinate, cron).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cu: read result: %w", err)
	}
	return b, true, nil
}

// attestAt finds the attestation fields of the evaluation with this key.
func (s *store) attestAt(ctx context.Context, pid string, ts, ordinate int64, cron string) (*attestRow, error) {
	return s.attestWhere(ctx, `process=? AND timestamp=? AND ordinate=? AND cron=?`, pid, ts, ordinate, cron)
}
