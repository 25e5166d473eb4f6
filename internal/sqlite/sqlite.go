// Package sqlite opens the embedded SQLite databases that aonode's units keep
// in their data directories (pure Go, modernc.org/sqlite) and commits their
// writes through a single writer that groups concurrent writes into one
// transaction: with synchronous=FULL every commit is an fsync, so committing
// the writes that are waiting together is what makes durable writes fast.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("sqlite: database is closed")

// maxBatch bounds the writes committed in one transaction.
const maxBatch = 256

// DB is a database with one writer connection and a pool of read-only ones.
type DB struct {
	// Read is the pool of read-only connections.
	Read *sql.DB
	w    *sql.DB

	writes chan writeReq
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

type writeReq struct {
	op   func(tx *sql.Tx) error
	done chan error
}

// Open opens (creating it and its directory if needed) the database at path
// in WAL mode with synchronous=FULL, so that a committed write survives a
// crash or power loss, and runs schema on it.
func Open(ctx context.Context, path, schema string, readers int) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: create the schema in %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(max(readers, 1))
	d := &DB{Read: r, w: w, writes: make(chan writeReq, 1024), done: make(chan struct{})}
	d.wg.Add(1)
	go d.writer()
	return d, nil
}

// Writer is the single writer connection, for preparing statements and for
// callers that run their own transactions; those wait for the grouped writes.
func (d *DB) Writer() *sql.DB { return d.w }

// Close commits the writes already queued, then closes the database.
func (d *DB) Close() error {
	var err error
	d.closed.Do(func() {
		close(d.done)
		d.wg.Wait()
		err = errors.Join(d.w.Close(), d.Read.Close())
	})
	return err
}

// Write runs op in a transaction, possibly shared with other writes, and
// returns once it is committed. Once queued the write happens even if ctx
// ends, so a caller never reports failure for data that was stored.
func (d *DB) Write(ctx context.Context, op func(tx *sql.Tx) error) error {
	r := writeReq{op: op, done: make(chan error, 1)}
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

func (d *DB) writer() {
	defer d.wg.Done()
	for {
		var batch []writeReq
		select {
		case r := <-d.writes:
			batch = append(batch, r)
		case <-d.done:
			for { // finish what was queued before Close
				select {
				case r := <-d.writes:
					r.done <- d.run([]writeReq{r})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-d.writes:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		d.commit(batch)
	}
}

func (d *DB) commit(batch []writeReq) {
	err := d.run(batch)
	if err != nil && len(batch) > 1 {
		// One failing write must not fail the others: run them one by one.
		for _, r := range batch {
			r.done <- d.run([]writeReq{r})
		}
		return
	}
	for _, r := range batch {
		r.done <- err
	}
}

func (d *DB) run(batch []writeReq) error {
	tx, err := d.w.Begin()
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	for _, r := range batch {
		if err := r.op(tx); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}
