package su

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// ErrNotFound is returned (wrapped) by Store lookups that find nothing.
var ErrNotFound = errors.New("su: not found")

// ProcessRecord is a hosted process: its item and, under AOP-6, its own
// assignment (nonce 0). A legacy process has no assignment; its Timestamp and
// BlockHeight are then those the SU saw when it stored it.
type ProcessRecord struct {
	ID           string
	Item         []byte // the Process data item
	Assignment   []byte // its assignment item; nil for a legacy process
	AssignmentID string // "" for a legacy process
	Epoch        int64
	Nonce        int64
	HashChain    string // "" for a legacy process
	Timestamp    int64
	BlockHeight  string // 12-digit
}

// Legacy reports whether the process was stored without an assignment.
func (p *ProcessRecord) Legacy() bool { return p.Assignment == nil }

// SlotRecord is one scheduled slot of a process other than the process itself:
// an assignment and the message it assigns (nil for a pure assignment of an
// existing transaction).
type SlotRecord struct {
	ProcessID    string
	Nonce        int64
	Epoch        int64
	MessageID    string // the message id, or the assigned transaction id
	AssignmentID string
	Timestamp    int64
	HashChain    string
	BlockHeight  string
	Assignment   []byte
	Message      []byte // nil for a pure assignment
}

// OutboxItem is a data item waiting to be published to the permanent store.
type OutboxItem struct {
	Seq    int64
	ItemID string
	Item   []byte
}

// Batch is what one group commit writes: all of it or nothing.
type Batch struct {
	Processes []*ProcessRecord
	Slots     []*SlotRecord
	Outbox    []OutboxItem // Seq is assigned by the store
}

// SlotQuery selects slots of one process. Bounds are optional; all given bounds
// apply. Rows come in nonce order, or (timestamp, nonce) order with ByTimestamp.
type SlotQuery struct {
	AfterTimestamp *int64 // timestamp > this
	UntilTimestamp *int64 // timestamp <= this
	AfterNonce     *int64 // nonce > this
	UntilNonce     *int64 // nonce <= this
	ByTimestamp    bool
	Limit          int
	// MaxBytes, when positive, stops reading once the rows before the last
	// one read hold more than MaxBytes of assignment and message bytes, so
	// that a page of large messages is not read whole (a caller cutting the
	// page at MaxBytes still sees the row after its cut, for has_next_page).
	MaxBytes int
}

// Store is the SU's stable storage. Commit must be durable when it returns nil.
// Implementations: OpenSQLite (embedded, the default) and OpenPostgres.
type Store interface {
	// Commit writes a batch atomically and durably.
	Commit(ctx context.Context, b *Batch) error
	// Process returns a hosted process, or ErrNotFound.
	Process(ctx context.Context, id string) (*ProcessRecord, error)
	// LastSlot returns the process's slot with the highest nonce, or ErrNotFound.
	LastSlot(ctx context.Context, processID string) (*SlotRecord, error)
	// Scheduled returns, for each of ids already scheduled on the process, its
	// first slot.
	Scheduled(ctx context.Context, processID string, ids []string) (map[string]*SlotRecord, error)
	// SlotByID returns the oldest slot whose message id or assignment id is id.
	SlotByID(ctx context.Context, id string) (*SlotRecord, error)
	// Slots returns up to q.Limit slots of a process.
	Slots(ctx context.Context, processID string, q SlotQuery) ([]*SlotRecord, error)
	// PendingOutbox returns up to limit unpublished items, oldest first.
	PendingOutbox(ctx context.Context, limit int) ([]OutboxItem, error)
	// DeleteOutbox removes published items.
	DeleteOutbox(ctx context.Context, seqs []int64) error
	// Meta and SetMeta keep small settings (the last known block height).
	Meta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error
	Close() error
}

// OpenStore opens the store named by a database URL: "" or "sqlite:PATH" for the
// embedded store (dataDir/su.db when PATH is empty), "postgres://…" or
// "postgresql://…" for PostgreSQL.
func OpenStore(ctx context.Context, database, dataDir string) (Store, error) {
	switch {
	case strings.HasPrefix(database, "postgres://"), strings.HasPrefix(database, "postgresql://"):
		return OpenPostgres(ctx, database)
	case database == "" || strings.HasPrefix(database, "sqlite:"):
		path := strings.TrimPrefix(database, "sqlite:")
		if path == "" {
			if dataDir == "" {
				return nil, errors.New("su: no data directory for the embedded store")
			}
			path = dataDir + "/su.db"
		}
		return OpenSQLite(ctx, path)
	}
	return nil, fmt.Errorf("su: unsupported database %q (want postgres://… or sqlite:PATH)", database)
}

// ---- the SQL shared by both backends ----

// db abstracts database/sql (SQLite) and pgx (PostgreSQL). Queries use $N
// placeholders, which both accept.
type db interface {
	exec(ctx context.Context, q string, args ...any) error
	query(ctx context.Context, q string, args ...any) (rows, error)
	begin(ctx context.Context) (tx, error)
	close() error
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type tx interface {
	exec(ctx context.Context, q string, args ...any) error
	commit(ctx context.Context) error
	rollback(ctx context.Context)
}

// sqlStore implements Store over a db.
type sqlStore struct {
	read, write   db
	name          string
	stop, stopped chan struct{} // background work (SQLite checkpoints)
	closeOnce     sync.Once
	closeErr      error
}

const slotCols = "process_id, nonce, epoch, message_id, assignment_id, ts, hash_chain, block_height, assignment, message"
const processCols = "process_id, item, assignment, assignment_id, epoch, nonce, hash_chain, ts, block_height"

func blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// statement is one SQL statement of a group commit.
type statement struct {
	q    string
	args []any
}

// batchExecer is a db that can run a group commit's statements as one atomic,
// durable unit more cheaply than begin, exec… and commit (PostgreSQL: one
// pipelined round trip).
type batchExecer interface {
	execBatch(ctx context.Context, stmts []statement) error
}

// appendInserts appends multi-row INSERTs of at most chunk rows each. The
// statement text depends only on the row count, so that both backends keep it
// prepared.
func appendInserts(out []statement, table, cols string, n, width int, row func(i int) []any) []statement {
	const maxParams = 900
	chunk := max(1, maxParams/width)
	for start := 0; start < n; start += chunk {
		end := min(n, start+chunk)
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + table + " (" + cols + ") VALUES ")
		args := make([]any, 0, (end-start)*width)
		for i := start; i < end; i++ {
			if i > start {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j := range width {
				if j > 0 {
					sb.WriteByte(',')
				}
				sb.WriteByte('$')
				sb.WriteString(strconv.Itoa(len(args) + j + 1))
			}
			sb.WriteByte(')')
			args = append(args, row(i)...)
		}
		out = append(out, statement{sb.String(), args})
	}
	return out
}

func commitStatements(b *Batch) []statement {
	var out []statement
	out = appendInserts(out, "su_processes", processCols, len(b.Processes), 9, func(i int) []any {
		p := b.Processes[i]
		return []any{p.ID, p.Item, blob(p.Assignment), p.AssignmentID, p.Epoch, p.Nonce, p.HashChain, p.Timestamp, p.BlockHeight}
	})
	out = appendInserts(out, "su_slots", slotCols, len(b.Slots), 10, func(i int) []any {
		r := b.Slots[i]
		return []any{r.ProcessID, r.Nonce, r.Epoch, r.MessageID, r.AssignmentID, r.Timestamp, r.HashChain, r.BlockHeight, r.Assignment, blob(r.Message)}
	})
	out = appendInserts(out, "su_outbox", "item_id, item", len(b.Outbox), 2, func(i int) []any {
		return []any{b.Outbox[i].ItemID, b.Outbox[i].Item}
	})
	return out
}

func (s *sqlStore) Commit(ctx context.Context, b *Batch) (err error) {
	stmts := commitStatements(b)
	if len(stmts) == 0 {
		return nil
	}
	if be, ok := s.write.(batchExecer); ok {
		if err := be.execBatch(ctx, stmts); err != nil {
			return fmt.Errorf("su: %s: commit: %w", s.name, err)
		}
		return nil
	}
	t, err := s.write.begin(ctx)
	if err != nil {
		return fmt.Errorf("su: %s: begin: %w", s.name, err)
	}
	defer func() {
		if err != nil {
			t.rollback(context.WithoutCancel(ctx))
		}
	}()
	for _, st := range stmts {
		if err = t.exec(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("su: %s: %s: %w", s.name, st.q[:strings.Index(st.q, " (")], err)
		}
	}
	if err = t.commit(ctx); err != nil {
		return fmt.Errorf("su: %s: commit: %w", s.name, err)
	}
	return nil
}

func scanProcess(r rows) (*ProcessRecord, error) {
	p := &ProcessRecord{}
	if err := r.Scan(&p.ID, &p.Item, &p.Assignment, &p.AssignmentID, &p.Epoch, &p.Nonce, &p.HashChain, &p.Timestamp, &p.BlockHeight); err != nil {
		return nil, err
	}
	return p, nil
}

func scanSlot(r rows) (*SlotRecord, error) {
	s := &SlotRecord{}
	if err := r.Scan(&s.ProcessID, &s.Nonce, &s.Epoch, &s.MessageID, &s.AssignmentID, &s.Timestamp, &s.HashChain, &s.BlockHeight, &s.Assignment, &s.Message); err != nil {
		return nil, err
	}
	return s, nil
}

// collect runs a query and scans every row.
func collect[T any](ctx context.Context, d db, scan func(rows) (T, error), q string, args ...any) ([]T, error) {
	r, err := d.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []T
	for r.Next() {
		v, err := scan(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, r.Err()
}

func (s *sqlStore) Process(ctx context.Context, id string) (*ProcessRecord, error) {
	ps, err := collect(ctx, s.read, scanProcess, "SELECT "+processCols+" FROM su_processes WHERE process_id = $1", id)
	if err != nil {
		return nil, fmt.Errorf("su: %s: process %s: %w", s.name, id, err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("process %s: %w", id, ErrNotFound)
	}
	return ps[0], nil
}

func (s *sqlStore) one(ctx context.Context, what, q string, args ...any) (*SlotRecord, error) {
	rs, err := collect(ctx, s.read, scanSlot, q, args...)
	if err != nil {
		return nil, fmt.Errorf("su: %s: %s: %w", s.name, what, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return rs[0], nil
}

func (s *sqlStore) LastSlot(ctx context.Context, pid string) (*SlotRecord, error) {
	return s.one(ctx, "last slot of "+pid, "SELECT "+slotCols+" FROM su_slots WHERE process_id = $1 ORDER BY nonce DESC LIMIT 1", pid)
}

func (s *sqlStore) SlotByID(ctx context.Context, id string) (*SlotRecord, error) {
	// The oldest match: a message assigned again later is found as itself first.
	a, errA := s.one(ctx, "slot "+id, "SELECT "+slotCols+" FROM su_slots WHERE message_id = $1 ORDER BY ts, nonce LIMIT 1", id)
	b, errB := s.one(ctx, "slot "+id, "SELECT "+slotCols+" FROM su_slots WHERE assignment_id = $1 LIMIT 1", id)
	switch {
	case errA == nil && errB == nil:
		if b.Timestamp < a.Timestamp {
			return b, nil
		}
		return a, nil
	case errA == nil:
		return a, nil
	case errB == nil:
		return b, nil
	case !errors.Is(errA, ErrNotFound):
		return nil, errA
	}
	return nil, errB
}

// scheduledQuery selects the slots of n message ids, of every process. The
// process is filtered by the caller rather than in SQL: with "process_id = ?"
// in the WHERE clause both SQLite and PostgreSQL (before it has statistics)
// walk the primary key over the whole schedule of the process, which grows
// without bound (it was most of the SU's CPU time besides signing); by
// message id alone the only usable index is su_slots_message, a few probes
// whatever the size.
func scheduledQuery(n int) string {
	var in strings.Builder
	for i := range n {
		if i > 0 {
			in.WriteByte(',')
		}
		in.WriteString("$" + strconv.Itoa(i+1))
	}
	return "SELECT " + slotCols + " FROM su_slots WHERE message_id IN (" + in.String() + ") ORDER BY nonce"
}

func (s *sqlStore) Scheduled(ctx context.Context, pid string, ids []string) (map[string]*SlotRecord, error) {
	out := make(map[string]*SlotRecord)
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(len(ids), start+500)]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rs, err := collect(ctx, s.read, scanSlot, scheduledQuery(len(chunk)), args...)
		if err != nil {
			return nil, fmt.Errorf("su: %s: scheduled ids of %s: %w", s.name, pid, err)
		}
		for _, r := range rs {
			if _, ok := out[r.MessageID]; !ok && r.ProcessID == pid {
				out[r.MessageID] = r
			}
		}
	}
	return out, nil
}

func (s *sqlStore) Slots(ctx context.Context, pid string, q SlotQuery) ([]*SlotRecord, error) {
	var sb strings.Builder
	args := []any{pid}
	sb.WriteString("SELECT " + slotCols + " FROM su_slots WHERE process_id = $1")
	cond := func(expr string, v *int64) {
		if v != nil {
			args = append(args, *v)
			sb.WriteString(" AND " + expr + " $" + strconv.Itoa(len(args)))
		}
	}
	cond("ts >", q.AfterTimestamp)
	cond("ts <=", q.UntilTimestamp)
	cond("nonce >", q.AfterNonce)
	cond("nonce <=", q.UntilNonce)
	if q.ByTimestamp {
		sb.WriteString(" ORDER BY ts, nonce")
	} else {
		sb.WriteString(" ORDER BY nonce")
	}
	args = append(args, int64(q.Limit))
	sb.WriteString(" LIMIT $" + strconv.Itoa(len(args)))
	rs, err := s.slotRows(ctx, q.MaxBytes, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("su: %s: slots of %s: %w", s.name, pid, err)
	}
	return rs, nil
}

// slotRows is collect for slots, stopping early as SlotQuery.MaxBytes says.
func (s *sqlStore) slotRows(ctx context.Context, maxBytes int, q string, args ...any) ([]*SlotRecord, error) {
	if maxBytes <= 0 {
		return collect(ctx, s.read, scanSlot, q, args...)
	}
	r, err := s.read.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []*SlotRecord
	held := 0 // bytes of every row but the last
	for held <= maxBytes && r.Next() {
		v, err := scanSlot(r)
		if err != nil {
			return nil, err
		}
		if n := len(out); n > 0 {
			held += len(out[n-1].Assignment) + len(out[n-1].Message)
		}
		out = append(out, v)
	}
	return out, r.Err()
}

func (s *sqlStore) PendingOutbox(ctx context.Context, limit int) ([]OutboxItem, error) {
	out, err := collect(ctx, s.read, func(r rows) (OutboxItem, error) {
		var o OutboxItem
		err := r.Scan(&o.Seq, &o.ItemID, &o.Item)
		return o, err
	}, "SELECT seq, item_id, item FROM su_outbox ORDER BY seq LIMIT $1", int64(limit))
	if err != nil {
		return nil, fmt.Errorf("su: %s: outbox: %w", s.name, err)
	}
	return out, nil
}

func (s *sqlStore) DeleteOutbox(ctx context.Context, seqs []int64) error {
	for start := 0; start < len(seqs); start += 500 {
		chunk := seqs[start:min(len(seqs), start+500)]
		args := make([]any, len(chunk))
		var in strings.Builder
		for i, v := range chunk {
			if i > 0 {
				in.WriteByte(',')
			}
			args[i] = v
			in.WriteString("$" + strconv.Itoa(i+1))
		}
		if err := s.write.exec(ctx, "DELETE FROM su_outbox WHERE seq IN ("+in.String()+")", args...); err != nil {
			return fmt.Errorf("su: %s: delete outbox: %w", s.name, err)
		}
	}
	return nil
}

func (s *sqlStore) Meta(ctx context.Context, key string) (string, error) {
	vs, err := collect(ctx, s.read, func(r rows) (string, error) {
		var v string
		err := r.Scan(&v)
		return v, err
	}, "SELECT v FROM su_meta WHERE k = $1", key)
	if err != nil {
		return "", fmt.Errorf("su: %s: meta %s: %w", s.name, key, err)
	}
	if len(vs) == 0 {
		return "", fmt.Errorf("meta %s: %w", key, ErrNotFound)
	}
	return vs[0], nil
}

func (s *sqlStore) SetMeta(ctx context.Context, key, value string) error {
	if err := s.write.exec(ctx, "INSERT INTO su_meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v", key, value); err != nil {
		return fmt.Errorf("su: %s: set meta %s: %w", s.name, key, err)
	}
	return nil
}

// Close closes the store; closing it again is a no-op.
func (s *sqlStore) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.stopped
		}
		s.closeErr = s.write.close()
		if s.read != s.write {
			s.closeErr = errors.Join(s.closeErr, s.read.close())
		}
	})
	return s.closeErr
}

// schema is the DDL; blobType and seqType differ by dialect.
func schema(blobType, seqType string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS su_processes (
			process_id TEXT PRIMARY KEY,
			item ` + blobType + ` NOT NULL,
			assignment ` + blobType + `,
			assignment_id TEXT NOT NULL,
			epoch BIGINT NOT NULL,
			nonce BIGINT NOT NULL,
			hash_chain TEXT NOT NULL,
			ts BIGINT NOT NULL,
			block_height TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS su_slots (
			process_id TEXT NOT NULL,
			nonce BIGINT NOT NULL,
			epoch BIGINT NOT NULL,
			message_id TEXT NOT NULL,
			assignment_id TEXT NOT NULL,
			ts BIGINT NOT NULL,
			hash_chain TEXT NOT NULL,
			block_height TEXT NOT NULL,
			assignment ` + blobType + ` NOT NULL,
			message ` + blobType + `,
			PRIMARY KEY (process_id, nonce))`,
		`CREATE INDEX IF NOT EXISTS su_slots_ts ON su_slots (process_id, ts, nonce)`,
		`CREATE INDEX IF NOT EXISTS su_slots_message ON su_slots (message_id)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS su_slots_assignment ON su_slots (assignment_id)`,
		`CREATE TABLE IF NOT EXISTS su_outbox (
			seq ` + seqType + `,
			item_id TEXT NOT NULL,
			item ` + blobType + ` NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS su_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`,
	}
}
