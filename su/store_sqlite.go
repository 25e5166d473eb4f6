package su

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// OpenSQLite opens (creating if needed) the embedded store at path. It runs in
// WAL mode with synchronous=FULL, so a committed batch survives a crash of the
// process or of the machine; one connection writes, several read.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("su: sqlite: %w", err)
	}
	pragmas := url.Values{"_pragma": {"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(OFF)",
		"wal_autocheckpoint(0)", "cache_size(-65536)", "temp_store(MEMORY)"}}
	dsn := "file:" + path + "?" + pragmas.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("su: sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	write := newSQLDB(w)
	for _, q := range schema("BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT") {
		if err := write.exec(ctx, q); err != nil {
			w.Close()
			return nil, fmt.Errorf("su: sqlite %s: schema: %w", path, err)
		}
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("su: sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	st := &sqlStore{read: newSQLDB(r), write: write, name: "sqlite", stop: make(chan struct{}), stopped: make(chan struct{})}
	go st.checkpointLoop(r)
	return st, nil
}

// checkpointLoop moves the WAL into the database file in the background, so
// that commits (which only append to the WAL and fsync it) never pay for it.
func (s *sqlStore) checkpointLoop(r *sql.DB) {
	defer close(s.stopped)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		case <-s.stop:
			r.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
			return
		}
	}
}

// sqlDB adapts database/sql to db. It keeps its statements prepared: the
// shared SQL comes in a few shapes (a multi-row INSERT per row count, an IN
// list per length), and parsing them again on every group commit and every
// lookup was a large part of the SU's CPU time besides signing.
type sqlDB struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt // by the query as written ($N placeholders)
}

func newSQLDB(d *sql.DB) *sqlDB { return &sqlDB{db: d, stmts: make(map[string]*sql.Stmt)} }

// maxStmts bounds the statement cache; queries beyond it run unprepared.
const maxStmts = 1024

// stmt returns the prepared form of q, or nil if the cache is full.
func (d *sqlDB) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	d.mu.Lock()
	st, ok := d.stmts[q]
	d.mu.Unlock()
	if ok {
		return st, nil
	}
	if len(d.stmts) >= maxStmts {
		return nil, nil
	}
	st, err := d.db.PrepareContext(ctx, positional(q))
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.stmts[q]; ok {
		st.Close()
		return old, nil
	}
	d.stmts[q] = st
	return st, nil
}

// positional rewrites the $N placeholders (which the shared SQL uses once each,
// in order) to SQLite's plain "?", which binds without the name lookups that
// make large multi-row INSERTs quadratic.
func positional(q string) string {
	if !strings.Contains(q, "$") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q))
	for i := 0; i < len(q); i++ {
		if q[i] == '$' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
			b.WriteByte('?')
			for i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
				i++
			}
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func (d *sqlDB) exec(ctx context.Context, q string, args ...any) error {
	st, err := d.stmt(ctx, q)
	if err != nil {
		return err
	}
	if st != nil {
		_, err = st.ExecContext(ctx, args...)
	} else {
		_, err = d.db.ExecContext(ctx, positional(q), args...)
	}
	return err
}

func (d *sqlDB) query(ctx context.Context, q string, args ...any) (rows, error) {
	st, err := d.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	var r *sql.Rows
	if st != nil {
		r, err = st.QueryContext(ctx, args...)
	} else {
		r, err = d.db.QueryContext(ctx, positional(q), args...)
	}
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (d *sqlDB) begin(ctx context.Context) (tx, error) {
	t, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{t: t, d: d, unprepared: new([]string)}, nil
}

func (d *sqlDB) close() error {
	d.mu.Lock()
	for _, st := range d.stmts {
		st.Close()
	}
	clear(d.stmts)
	d.mu.Unlock()
	return d.db.Close()
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type sqlTx struct {
	t *sql.Tx
	d *sqlDB
	// unprepared are queries this transaction ran without a cached statement;
	// they are prepared once it ends (the write pool's only connection is
	// then free: preparing on the pool now would wait for it forever).
	unprepared *[]string
}

func (t sqlTx) exec(ctx context.Context, q string, args ...any) error {
	t.d.mu.Lock()
	st := t.d.stmts[q]
	t.d.mu.Unlock()
	var err error
	if st != nil {
		_, err = t.t.StmtContext(ctx, st).ExecContext(ctx, args...)
	} else {
		*t.unprepared = append(*t.unprepared, q)
		_, err = t.t.ExecContext(ctx, positional(q), args...)
	}
	return err
}

func (t sqlTx) commit(ctx context.Context) error {
	err := t.t.Commit()
	t.prepare(ctx)
	return err
}

func (t sqlTx) rollback(ctx context.Context) {
	t.t.Rollback()
	t.prepare(ctx)
}

func (t sqlTx) prepare(ctx context.Context) {
	for _, q := range *t.unprepared {
		t.d.stmt(ctx, q) // a failure only means the next use is unprepared again
	}
	*t.unprepared = nil
}
