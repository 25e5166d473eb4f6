package su

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// OpenPostgres connects to PostgreSQL (a postgres:// URL; a search_path query
// parameter selects the schema) and creates the tables if needed. Commits wait
// for the server's WAL flush (synchronous_commit as configured, on by default).
func OpenPostgres(ctx context.Context, dsn string) (Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("su: postgres: %w", err)
	}
	p := &pgPool{cfg: cfg, conns: make(chan *pgx.Conn, 8), slots: make(chan struct{}, 8)}
	for _, q := range schema("BYTEA", "BIGSERIAL PRIMARY KEY") {
		if err := p.exec(ctx, q); err != nil {
			p.close()
			return nil, fmt.Errorf("su: postgres: schema: %w", err)
		}
	}
	return &sqlStore{read: p, write: p, name: "postgres"}, nil
}

// pgPool is a small connection pool over pgx.Conn (pgxpool would need another
// module).
type pgPool struct {
	cfg   *pgx.ConnConfig
	conns chan *pgx.Conn // idle connections
	slots chan struct{}  // one token per open connection
	shut  atomic.Bool    // closed: no new connections
}

func (p *pgPool) acquire(ctx context.Context) (*pgx.Conn, error) {
	if p.shut.Load() {
		return nil, errors.New("su: postgres: the store is closed")
	}
	select {
	case c := <-p.conns:
		return c, nil
	default:
	}
	select {
	case c := <-p.conns:
		return c, nil
	case p.slots <- struct{}{}:
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			<-p.slots
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release returns a healthy connection to the pool and drops a broken one.
func (p *pgPool) release(c *pgx.Conn, err error) {
	if c.IsClosed() || (err != nil && c.PgConn().IsBusy()) || p.shut.Load() {
		c.Close(context.Background())
		<-p.slots
		return
	}
	p.conns <- c
}

func (p *pgPool) exec(ctx context.Context, q string, args ...any) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, q, args...)
	p.release(c, err)
	return err
}

// execBatch sends the statements and their commit in one round trip: a pgx
// batch runs as one implicit transaction, committed at its Sync, and Close
// returns only after the server has answered that Sync, that is after the
// commit (with synchronous_commit on, after its WAL flush). Any error rolls
// the whole batch back.
func (p *pgPool) execBatch(ctx context.Context, stmts []statement) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, st := range stmts {
		b.Queue(st.q, st.args...)
	}
	err = c.SendBatch(ctx, b).Close()
	p.release(c, err)
	return err
}

func (p *pgPool) query(ctx context.Context, q string, args ...any) (rows, error) {
	c, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.Query(ctx, q, args...)
	if err != nil {
		p.release(c, err)
		return nil, err
	}
	return &pgRows{Rows: r, done: func() { p.release(c, r.Err()) }}, nil
}

func (p *pgPool) begin(ctx context.Context) (tx, error) {
	c, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	t, err := c.Begin(ctx)
	if err != nil {
		p.release(c, err)
		return nil, err
	}
	return &pgTx{t: t, done: func(err error) { p.release(c, err) }}, nil
}

func (p *pgPool) close() error {
	p.shut.Store(true)
	for {
		select {
		case c := <-p.conns:
			c.Close(context.Background())
		default:
			return nil
		}
	}
}

type pgRows struct {
	pgx.Rows
	done   func()
	closed bool
}

func (r *pgRows) Close() {
	if !r.closed {
		r.closed = true
		r.Rows.Close()
		r.done()
	}
}

type pgTx struct {
	t        pgx.Tx
	done     func(error)
	finished bool
}

func (t *pgTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.t.Exec(ctx, q, args...)
	return err
}

func (t *pgTx) commit(ctx context.Context) error {
	err := t.t.Commit(ctx)
	t.finish(err)
	return err
}

func (t *pgTx) rollback(ctx context.Context) {
	if !t.finished {
		t.finish(t.t.Rollback(ctx))
	}
}

func (t *pgTx) finish(err error) {
	if !t.finished {
		t.finished = true
		t.done(err)
	}
}

// OpenPostgresAdmin opens a bare connection pool (no schema setup), for
// creating and dropping schemas in tests and benchmarks.
func OpenPostgresAdmin(ctx context.Context, dsn string) (*pgPool, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	p := &pgPool{cfg: cfg, conns: make(chan *pgx.Conn, 1), slots: make(chan struct{}, 1)}
	if err := p.exec(ctx, "SELECT 1"); err != nil {
		return nil, err
	}
	return p, nil
}

// WithSearchPath returns dsn selecting schema as the search_path.
func WithSearchPath(dsn, schema string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}
