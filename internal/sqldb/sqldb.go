// Package sqldb gives a unit one face over its two SQL engines: the embedded
// SQLite of its data directory (the default, group-committed by
// internal/sqlite) and PostgreSQL (pgx's database/sql driver), which units
// share when they run as a cluster. Queries are written once, in SQLite's
// dialect with ? placeholders and the small common subset of both engines
// (ON CONFLICT, RETURNING, partial indexes); Tx and DB rebind them for
// PostgreSQL, and PGSchema translates a schema.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aonode/aonode/internal/sqlite"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DB is a unit's database on either engine.
type DB struct {
	// Read is the pool readers use (on PostgreSQL the same pool as writes).
	Read *sql.DB
	lite *sqlite.DB
	pg   *sql.DB

	// PostgreSQL writes are group-committed too: a commit waits for the
	// server's WAL flush (milliseconds on a disk), so pgWriters goroutines
	// each commit the writes waiting together in one transaction.
	writes chan pgWriteReq
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

type pgWriteReq struct {
	ctx  context.Context
	op   func(tx *Tx) error
	done chan error
}

// pgWriters is how many transactions a DB commits at once on PostgreSQL.
const pgWriters = 1

// pgMaxBatch bounds the writes committed in one PostgreSQL transaction.
const pgMaxBatch = 64

// OpenSQLite opens (creating it) the SQLite database at path; see
// sqlite.Open.
func OpenSQLite(ctx context.Context, path, schema string, readers int) (*DB, error) {
	d, err := sqlite.Open(ctx, path, schema, readers)
	if err != nil {
		return nil, err
	}
	return &DB{Read: d.Read, lite: d}, nil
}

// IsPostgres tells whether a --database value names PostgreSQL.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// OpenPostgres connects to PostgreSQL (a postgres:// URL; a search_path query
// parameter selects the schema) and creates schema (SQLite's dialect,
// translated by PGSchema) if needed. The schema is created under an advisory
// lock, so that units starting together against one database do not race.
func OpenPostgres(ctx context.Context, dsn, schema string, conns int) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db.SetMaxOpenConns(max(conns, 2))
	db.SetMaxIdleConns(max(conns, 2))
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	d := &DB{Read: db, pg: db, writes: make(chan pgWriteReq, 1024), done: make(chan struct{})}
	for range pgWriters {
		d.wg.Add(1)
		go d.pgWriter()
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	if err := d.Write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, int64(h.Sum64()>>1)); err != nil {
			return err
		}
		_, err := tx.tx.ExecContext(ctx, PGSchema(schema))
		return err
	}); err != nil {
		d.Close()
		return nil, fmt.Errorf("postgres: schema: %w", err)
	}
	return d, nil
}

func (d *DB) pgWriter() {
	defer d.wg.Done()
	for {
		var batch []pgWriteReq
		select {
		case r := <-d.writes:
			batch = append(batch, r)
		case <-d.done:
			for { // finish what was queued before Close
				select {
				case r := <-d.writes:
					r.done <- d.pgRun(r.ctx, []pgWriteReq{r})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < pgMaxBatch {
			select {
			case r := <-d.writes:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		err := d.pgRun(context.Background(), batch)
		if err != nil && len(batch) > 1 {
			// One failing write must not fail the others: run them one by one.
			for _, r := range batch {
				r.done <- d.pgRun(r.ctx, []pgWriteReq{r})
			}
			continue
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// pgRun commits batch in one transaction, retrying a serialization failure
// or deadlock a few times.
func (d *DB) pgRun(ctx context.Context, batch []pgWriteReq) error {
	for attempt := 0; ; attempt++ {
		err := d.pgWrite(ctx, batch)
		if err == nil || attempt >= 5 || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		}
	}
}

// Postgres tells whether d is on PostgreSQL.
func (d *DB) Postgres() bool { return d.pg != nil }

// ErrClosed is returned by Write after Close (SQLite).
var ErrClosed = sqlite.ErrClosed

// Close closes the database after the queued writes commit.
func (d *DB) Close() error {
	if d.lite != nil {
		return d.lite.Close()
	}
	var err error
	d.closed.Do(func() {
		close(d.done)
		d.wg.Wait()
		err = d.pg.Close()
	})
	return err
}

// Ping checks that the database answers (for health checks).
func (d *DB) Ping(ctx context.Context) error {
	var one int
	return d.Read.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Tx is a write transaction; its statements use ? placeholders on both
// engines.
type Tx struct {
	tx *sql.Tx
	pg bool
}

func (t *Tx) q(q string) string {
	if t.pg {
		return Rebind(q)
	}
	return q
}

// Exec runs a statement.
func (t *Tx) Exec(q string, args ...any) (sql.Result, error) { return t.tx.Exec(t.q(q), args...) }

// QueryRow runs a query that returns at most one row.
func (t *Tx) QueryRow(q string, args ...any) *sql.Row { return t.tx.QueryRow(t.q(q), args...) }

// Query runs a query.
func (t *Tx) Query(q string, args ...any) (*sql.Rows, error) { return t.tx.Query(t.q(q), args...) }

// Prepare prepares a hot statement on SQLite's writer connection (preparing
// later would wait for the connection a transaction holds). On PostgreSQL it
// returns nil: pgx caches its statements itself.
func (d *DB) Prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	if d.lite == nil {
		return nil, nil
	}
	return d.lite.Writer().PrepareContext(ctx, q)
}

// ExecStmt runs st (from Prepare), or q where st is nil.
func (t *Tx) ExecStmt(st *sql.Stmt, q string, args ...any) (sql.Result, error) {
	if st != nil && !t.pg {
		return t.tx.Stmt(st).Exec(args...)
	}
	return t.Exec(q, args...)
}

// QueryRowStmt runs st (from Prepare), or q where st is nil, for one row.
func (t *Tx) QueryRowStmt(st *sql.Stmt, q string, args ...any) *sql.Row {
	if st != nil && !t.pg {
		return t.tx.Stmt(st).QueryRow(args...)
	}
	return t.QueryRow(q, args...)
}

// Prepare prepares q (? placeholders) for repeated use in the transaction;
// the caller closes it.
func (t *Tx) Prepare(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, t.q(q))
}

// Postgres tells whether the transaction is on PostgreSQL (for the rare
// statement that differs, such as FOR UPDATE SKIP LOCKED).
func (t *Tx) Postgres() bool { return t.pg }

// Write runs op in a committed transaction, possibly shared with other
// writes (group commit), so op must not keep state between calls and may run
// more than once (a shared transaction that fails is rerun write by write; on
// PostgreSQL a serialization failure or deadlock is retried). Once queued the
// write happens even if ctx ends, so a caller never reports failure for data
// that was stored.
func (d *DB) Write(ctx context.Context, op func(tx *Tx) error) error {
	if d.lite != nil {
		return d.lite.Write(ctx, func(tx *sql.Tx) error { return op(&Tx{tx: tx}) })
	}
	r := pgWriteReq{ctx: context.WithoutCancel(ctx), op: op, done: make(chan error, 1)}
	select {
	case <-d.done:
		return ErrClosed
	default:
	}
	select {
	case d.writes <- r:
	case <-d.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.done
}

func (d *DB) pgWrite(ctx context.Context, batch []pgWriteReq) error {
	tx, err := d.pg.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	for _, r := range batch {
		if err := r.op(&Tx{tx: tx, pg: true}); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// retryable reports PostgreSQL's serialization failure and deadlock
// (SQLSTATE 40001, 40P01).
func retryable(err error) bool {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		s := se.SQLState()
		return s == "40001" || s == "40P01"
	}
	return false
}

// Query runs a read query with ? placeholders.
func (d *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if d.pg != nil {
		q = Rebind(q)
	}
	return d.Read.QueryContext(ctx, q, args...)
}

// QueryRow runs a read query that returns at most one row.
func (d *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if d.pg != nil {
		q = Rebind(q)
	}
	return d.Read.QueryRowContext(ctx, q, args...)
}

// Rebind turns ? placeholders (outside quoted strings) into PostgreSQL's
// $1, $2, ….
func Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	quoted := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

var (
	reAutoinc = regexp.MustCompile(`(?i)\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b`)
	reInteger = regexp.MustCompile(`(?i)\bINTEGER\b`)
	reBlob    = regexp.MustCompile(`(?i)\bBLOB\b`)
	reRowid   = regexp.MustCompile(`(?i)\)\s*WITHOUT\s+ROWID`)
)

// PGSchema translates a SQLite schema to PostgreSQL: an autoincrement key
// becomes BIGSERIAL, INTEGER BIGINT (SQLite's integers are 64-bit), BLOB
// BYTEA, and WITHOUT ROWID goes (PostgreSQL tables have no rowid).
func PGSchema(schema string) string {
	s := reRowid.ReplaceAllString(schema, ")")
	s = reAutoinc.ReplaceAllString(s, "BIGSERIAL PRIMARY KEY")
	s = reInteger.ReplaceAllString(s, "BIGINT")
	return reBlob.ReplaceAllString(s, "BYTEA")
}
