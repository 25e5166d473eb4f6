package mu

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/aonode/aonode/internal/sqldb"
)

// Task states.
const (
	statePending = 0
	stateDone    = 1
	stateFailed  = 2
)

// task is one durable step of the crank. Key is unique: it is derived from
// what produced the task (the result and the index in its outbox), so that
// producing it again is a no-op.
type task struct {
	ID        int64
	Key       string
	Kind      string
	Queue     string // tasks of one queue run one at a time, in id order
	Process   string // the process the task is about (trace queries)
	Ref       string // the message, assignment or process id it concerns
	Root      string // the user message it was pushed for ("" for cron)
	Parent    int64
	Wallet    string
	Payload   payload
	Item      []byte // the signed outbound item, once built
	State     int
	Attempts  int
	NextAt    int64 // unix ms
	LastError string
	Created   int64
	Updated   int64

	first chan error // in memory only: the submitter waits for the first attempt
	// foreign (in memory only, shared queue): another MU holds the lease on
	// the task's queue and runs it.
	foreign bool
}

// payload is the kind-specific part of a task (JSON in the store).
type payload struct {
	Pid      string         `json:"pid,omitempty"`      // process (pull, assign) or producing process
	MsgID    string         `json:"msgId,omitempty"`    // pull: the scheduled id
	From     string         `json:"from,omitempty"`     // producing process
	Msg      *OutMessage    `json:"msg,omitempty"`      // message
	Spawn    *OutSpawn      `json:"spawn,omitempty"`    // spawn
	Assign   *OutAssignment `json:"assign,omitempty"`   // assign: Processes[0] is the target
	Template *Template      `json:"template,omitempty"` // reply: the item to sign
	SU       string         `json:"su,omitempty"`       // ingest: the SU it goes to
	Process  bool           `json:"process,omitempty"`  // ingest: the item is a Process
}

const schema = `
CREATE TABLE IF NOT EXISTS tasks (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	key        TEXT NOT NULL UNIQUE,
	kind       TEXT NOT NULL,
	queue      TEXT NOT NULL,
	process    TEXT NOT NULL,
	ref        TEXT NOT NULL,
	root       TEXT NOT NULL,
	parent     INTEGER NOT NULL,
	wallet     TEXT NOT NULL,
	payload    BLOB NOT NULL,
	item       BLOB,
	state      INTEGER NOT NULL,
	attempts   INTEGER NOT NULL,
	next_at    INTEGER NOT NULL,
	last_error TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_pending ON tasks(state) WHERE state = 0;
CREATE INDEX IF NOT EXISTS tasks_ref ON tasks(process, ref);
CREATE INDEX IF NOT EXISTS tasks_root ON tasks(process, root);
CREATE INDEX IF NOT EXISTS tasks_updated ON tasks(updated_at) WHERE state <> 0;
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks(queue, id) WHERE state = 0;
CREATE TABLE IF NOT EXISTS leases (
	queue TEXT PRIMARY KEY,
	owner TEXT NOT NULL,
	until INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS monitors (
	process    TEXT PRIMARY KEY,
	cursor     TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS processes (
	id   TEXT PRIMARY KEY,
	tags BLOB NOT NULL
);
`

// store is the MU's database: SQLite in its data directory by default, where
// writes are group-committed (internal/sqlite), which is what makes a fan-out
// of thousands of steps fast; or PostgreSQL, one queue shared by several MUs
// (see lease.go), when owner is set.
type store struct {
	d     *sqldb.DB
	owner string        // shared queue: this MU's lease owner id ("" on SQLite)
	ttl   time.Duration // shared queue: how long a lease lasts unrenewed
}

// openStore opens the queue: PostgreSQL when database is a postgres:// URL,
// else SQLite in dir.
func openStore(ctx context.Context, dir, database, owner string, ttl time.Duration) (*store, error) {
	if sqldb.IsPostgres(database) {
		d, err := sqldb.OpenPostgres(ctx, database, schema, 16)
		if err != nil {
			return nil, fmt.Errorf("mu: %w", err)
		}
		return &store{d: d, owner: owner, ttl: ttl}, nil
	}
	if database != "" {
		return nil, fmt.Errorf("mu: --database must be a postgres:// URL (or empty for SQLite), not %q", database)
	}
	d, err := sqldb.OpenSQLite(ctx, filepath.Join(dir, "mu.db"), schema, 4)
	if err != nil {
		return nil, fmt.Errorf("mu: %w", err)
	}
	return &store{d: d}, nil
}

func (s *store) close() error { return s.d.Close() }

// shared tells whether several MUs share this queue.
func (s *store) shared() bool { return s.owner != "" }

// write runs op in a committed transaction (possibly shared with others).
func (s *store) write(ctx context.Context, op func(tx *sqldb.Tx) error) error {
	return s.d.Write(ctx, op)
}

func nowMS() int64 { return time.Now().UnixMilli() }

// insertTasks inserts tasks whose key is new and sets their ID; tasks whose key
// exists are left with ID 0. On a shared queue it takes the leases of their
// queues where it can, and marks foreign the tasks of queues another MU holds.
func (s *store) insertTasks(tx *sqldb.Tx, ts []*task) error {
	for _, t := range ts {
		p, err := json.Marshal(t.Payload)
		if err != nil {
			return fmt.Errorf("mu: encode task: %w", err)
		}
		now := nowMS()
		if t.NextAt == 0 {
			t.NextAt = now
		}
		t.Created, t.Updated = now, now
		t.ID = 0
		err = tx.QueryRow(`INSERT INTO tasks(key, kind, queue, process, ref, root, parent, wallet, payload, item, state, attempts, next_at, last_error, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, '', ?, ?) ON CONFLICT(key) DO NOTHING RETURNING id`,
			t.Key, t.Kind, t.Queue, t.Process, t.Ref, t.Root, t.Parent, t.Wallet, p, t.Item, t.NextAt, now, now).Scan(&t.ID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("mu: insert task %s: %w", t.Key, err)
		}
	}
	if s.shared() {
		return s.leaseNew(tx, ts)
	}
	return nil
}

// addTasks inserts tasks (those whose key exists are skipped, ID 0).
func (s *store) addTasks(ctx context.Context, ts []*task) error {
	return s.write(ctx, func(tx *sqldb.Tx) error { return s.insertTasks(tx, ts) })
}

// finish ends task t (done or failed) and inserts its successors in the same
// transaction, so a crash never loses outputs nor repeats a finished step.
func (s *store) finish(ctx context.Context, t *task, state int, lastError string, next []*task) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		if err := s.fence(tx, t); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE tasks SET state = ?, last_error = ?, attempts = ?, ref = ?, updated_at = ? WHERE id = ?`,
			state, lastError, t.Attempts, t.Ref, nowMS(), t.ID); err != nil {
			return fmt.Errorf("mu: finish task %d: %w", t.ID, err)
		}
		if err := s.insertTasks(tx, next); err != nil {
			return err
		}
		if s.shared() {
			return s.releaseIfEmpty(tx, t.Queue)
		}
		return nil
	})
}

// saveItem records the signed outbound item before it is first sent.
func (s *store) saveItem(ctx context.Context, t *task) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		if err := s.fence(tx, t); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE tasks SET item = ?, ref = ?, updated_at = ? WHERE id = ?`, t.Item, t.Ref, nowMS(), t.ID)
		return err
	})
}

// retry records a failed attempt.
func (s *store) retry(ctx context.Context, t *task) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		if err := s.fence(tx, t); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE tasks SET attempts = ?, next_at = ?, last_error = ?, updated_at = ? WHERE id = ?`,
			t.Attempts, t.NextAt, t.LastError, nowMS(), t.ID)
		return err
	})
}

const taskCols = `id, key, kind, queue, process, ref, root, parent, wallet, payload, item, state, attempts, next_at, last_error, created_at, updated_at`

func scanTask(r interface{ Scan(...any) error }) (*task, error) {
	t := &task{}
	var p []byte
	if err := r.Scan(&t.ID, &t.Key, &t.Kind, &t.Queue, &t.Process, &t.Ref, &t.Root, &t.Parent, &t.Wallet, &p, &t.Item,
		&t.State, &t.Attempts, &t.NextAt, &t.LastError, &t.Created, &t.Updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(p, &t.Payload); err != nil {
		return nil, fmt.Errorf("mu: task %d payload: %w", t.ID, err)
	}
	return t, nil
}

func (s *store) queryTasks(ctx context.Context, q string, args ...any) ([]*task, error) {
	return s.queryTasksFrom(ctx, `SELECT `+taskCols+` FROM tasks `+q, args...)
}

// queryTasksFrom runs a full query whose columns are taskCols.
func (s *store) queryTasksFrom(ctx context.Context, q string, args ...any) ([]*task, error) {
	rows, err := s.d.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("mu: query tasks: %w", err)
	}
	defer rows.Close()
	var out []*task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// pending loads the unfinished tasks (on start).
func (s *store) pending(ctx context.Context) ([]*task, error) {
	return s.queryTasks(ctx, `WHERE state = 0 ORDER BY id`)
}

// purge deletes finished tasks last updated before cutoff.
func (s *store) purge(ctx context.Context, cutoff int64) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`DELETE FROM tasks WHERE state <> 0 AND updated_at < ?`, cutoff)
		return err
	})
}

// ---- monitors ----

func (s *store) putMonitor(ctx context.Context, pid string) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`INSERT INTO monitors(process, cursor, created_at) VALUES (?, '', ?) ON CONFLICT(process) DO NOTHING`, pid, nowMS())
		return err
	})
}

func (s *store) deleteMonitor(ctx context.Context, pid string) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`DELETE FROM monitors WHERE process = ?`, pid)
		return err
	})
}

// advanceMonitor stores the cursor and the outputs it covers atomically, so a
// cron evaluation's outbox is enqueued exactly once.
func (s *store) advanceMonitor(ctx context.Context, pid, cursor string, next []*task) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		res, err := tx.Exec(`UPDATE monitors SET cursor = ? WHERE process = ?`, cursor, pid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // deleted meanwhile
		}
		return s.insertTasks(tx, next)
	})
}

func (s *store) monitors(ctx context.Context) (map[string]string, error) {
	rows, err := s.d.Query(ctx, `SELECT process, cursor FROM monitors`)
	if err != nil {
		return nil, fmt.Errorf("mu: monitors: %w", err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var p, c string
		if err := rows.Scan(&p, &c); err != nil {
			return nil, err
		}
		m[p] = c
	}
	return m, rows.Err()
}

// ---- processes (immutable, cached forever) ----

func (s *store) putProcess(ctx context.Context, pid string, tags []Tag) error {
	b, _ := json.Marshal(tags)
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`INSERT INTO processes(id, tags) VALUES (?, ?) ON CONFLICT(id) DO NOTHING`, pid, b)
		return err
	})
}

func (s *store) process(ctx context.Context, pid string) ([]Tag, bool, error) {
	var b []byte
	err := s.d.QueryRow(ctx, `SELECT tags FROM processes WHERE id = ?`, pid).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mu: process %s: %w", pid, err)
	}
	var tags []Tag
	if err := json.Unmarshal(b, &tags); err != nil {
		return nil, false, fmt.Errorf("mu: process %s tags: %w", pid, err)
	}
	return tags, true, nil
}
