package su

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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
		"wal_autocheckpoint(0)", "cache_size(-65536)"}}
	dsn := "file:" + path + "?" + pragmas.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("su: sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	write := &sqlDB{w}
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
	st := &sqlStore{read: &sqlDB{r}, write: write, name: "sqlite", stop: make(chan struct{}), stopped: make(chan struct{})}
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

// sqlDB adapts database/sql to db.
type sqlDB struct{ db *sql.DB }

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
	_, err := d.db.ExecContext(ctx, positional(q), args...)
	return err
}

func (d *sqlDB) query(ctx context.Context, q string, args ...any) (rows, error) {
	r, err := d.db.QueryContext(ctx, positional(q), args...)
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
	return sqlTx{t}, nil
}

func (d *sqlDB) close() error { return d.db.Close() }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type sqlTx struct{ t *sql.Tx }

func (t sqlTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.t.ExecContext(ctx, positional(q), args...)
	return err
}
func (t sqlTx) commit(context.Context) error { return t.t.Commit() }
func (t sqlTx) rollback(context.Context)     { t.t.Rollback() }
