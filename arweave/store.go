// Package arweave is aonode's permanent store and the Arweave-compatible gateway
// in front of it: data items are verified, kept byte for byte, indexed for the
// GraphQL queries AO units and clients send, grouped into local blocks, and
// served over the gateway HTTP API (shared/spec/gateway.md).
package arweave

import (
	"context"
	"crypto/sha512"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/objstore"
	"github.com/aonode/aonode/internal/sqldb"
)

// ErrNotFound is returned when no item or block has the requested id or height.
var ErrNotFound = errors.New("arweave: not found")

// Block is a local block: a batch of newly stored items, as on Arweave.
type Block struct {
	Height    int64  `json:"height"`
	ID        string `json:"id"`
	Previous  string `json:"previous"`
	Timestamp int64  `json:"timestamp"` // seconds, as Arweave blocks
	Items     int    `json:"-"`
}

// Item is the indexed view of a stored data item.
type Item struct {
	Seq          int64 // indexing order; the stable sort key
	ID           string
	Type         ans104.SignatureType
	Signature    []byte
	Owner        []byte
	OwnerAddress string
	Target       string // base64url, "" when absent
	Anchor       []byte
	Tags         []ans104.Tag
	DataSize     int64
	ContentType  string // the Content-Type tag, "" when absent
	BundledIn    string // parent bundle id, "" when none
	Block        *Block // nil while pending
	StoredAt     time.Time
}

// Store is the permanent store: by default SQLite in one file, one writer that
// commits concurrent writes together, many readers. A shared gateway keeps its
// index on PostgreSQL (several gateway processes behind one load balancer
// serve the same items) and the items' bytes in S3-compatible object storage.
type Store struct {
	d      *sqldb.DB
	obj    *objstore.Store      // item bytes, keyed by id (nil: in the raws table)
	stmts  map[string]*sql.Stmt // prepared writer statements, by SQL text (SQLite)
	done   chan struct{}        // closed by Close, stops background loops
	closed sync.Once

	mu      sync.RWMutex
	current Block // the newest block
	now     func() time.Time
}

const schema = `
CREATE TABLE IF NOT EXISTS items (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	id            TEXT NOT NULL UNIQUE,
	sig_type      INTEGER NOT NULL,
	signature     BLOB NOT NULL,
	owner         BLOB NOT NULL,
	owner_address TEXT NOT NULL,
	target        TEXT NOT NULL,
	anchor        BLOB,
	data_size     INTEGER NOT NULL,
	data_offset   INTEGER NOT NULL,
	content_type  TEXT NOT NULL,
	bundled_in    TEXT NOT NULL,
	height        INTEGER,
	stored_ms     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_owner ON items(owner_address, seq);
CREATE INDEX IF NOT EXISTS items_target ON items(target, seq);
CREATE INDEX IF NOT EXISTS items_bundled_in ON items(bundled_in, seq);
CREATE INDEX IF NOT EXISTS items_pending ON items(height) WHERE height IS NULL;
CREATE INDEX IF NOT EXISTS items_height ON items(height, seq);
CREATE TABLE IF NOT EXISTS raws (
	seq INTEGER PRIMARY KEY,
	raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
	item_seq INTEGER NOT NULL,
	idx      INTEGER NOT NULL,
	name     TEXT NOT NULL,
	value    TEXT NOT NULL,
	PRIMARY KEY (item_seq, idx)
);
CREATE INDEX IF NOT EXISTS tags_name_value ON tags(name, value, item_seq);
CREATE TABLE IF NOT EXISTS forward_queue (
	id        TEXT PRIMARY KEY,
	attempts  INTEGER NOT NULL DEFAULT 0,
	next_ms   INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS upstream_cache (
	id           TEXT PRIMARY KEY,
	content_type TEXT NOT NULL,
	data         BLOB NOT NULL,
	fetched_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
	height    INTEGER PRIMARY KEY,
	id        TEXT NOT NULL UNIQUE,
	previous  TEXT NOT NULL,
	timestamp INTEGER NOT NULL,
	items     INTEGER NOT NULL
);
`

// Open opens (creating if needed) the store in dir/store.db.
func Open(ctx context.Context, dir string) (*Store, error) {
	return OpenWith(ctx, Options{Dir: dir})
}

// Options says where a Store keeps its index and its items' bytes.
type Options struct {
	// Dir holds store.db (the SQLite index, and the bytes unless Objects).
	Dir string
	// Database, a postgres:// URL, puts the index on PostgreSQL instead,
	// shared by the gateways given the same URL.
	Database string
	// Objects keeps the items' bytes in object storage, keyed by item id,
	// instead of in the index.
	Objects *objstore.Store
}

// OpenWith opens the store as o says.
func OpenWith(ctx context.Context, o Options) (*Store, error) {
	var d *sqldb.DB
	var err error
	switch {
	case sqldb.IsPostgres(o.Database):
		d, err = sqldb.OpenPostgres(ctx, o.Database, schema, 16)
	case o.Database != "":
		return nil, fmt.Errorf("arweave: --database must be a postgres:// URL (or empty for SQLite), not %q", o.Database)
	default:
		d, err = sqldb.OpenSQLite(ctx, filepath.Join(o.Dir, "store.db"), schema, 8)
	}
	if err != nil {
		return nil, fmt.Errorf("arweave: %w", err)
	}
	s := &Store{d: d, obj: o.Objects, done: make(chan struct{}), now: time.Now, stmts: map[string]*sql.Stmt{}}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadOrCreateGenesis(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close finishes the writes already queued and closes the database.
func (s *Store) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.done)
		err = s.d.Close()
	})
	return err
}

func (s *Store) loadOrCreateGenesis(ctx context.Context) error {
	var b Block
	err := s.write(ctx, func(tx *sqldb.Tx) error {
		if err := s.lockBlocks(tx); err != nil {
			return err
		}
		var err error
		b, err = blockAt(tx.QueryRow, -1)
		if errors.Is(err, ErrNotFound) {
			b = Block{Height: 0, Timestamp: s.now().Unix()}
			b.ID = blockID("", 0, b.Timestamp, 0)
			_, err = tx.Exec(`INSERT INTO blocks(height, id, previous, timestamp, items) VALUES (0, ?, '', ?, 0)`, b.ID, b.Timestamp)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("arweave: load blocks: %w", err)
	}
	s.current = b
	return nil
}

// Writers of a shared (PostgreSQL) index take an advisory lock: inserts
// share it, cutting a block holds it alone. So a block takes exactly the
// items committed before it (no insert with a smaller seq commits after it),
// and two gateways never cut the same height. On SQLite the single writer
// gives both already.
const blockLockKey = 0x61726277 // "arbw"

func (s *Store) lockBlocks(tx *sqldb.Tx) error {
	if !tx.Postgres() {
		return nil
	}
	_, err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, int64(blockLockKey))
	return err
}

func (s *Store) lockInserts(tx *sqldb.Tx) error {
	if !tx.Postgres() {
		return nil
	}
	_, err := tx.Exec(`SELECT pg_advisory_xact_lock_shared(?)`, int64(blockLockKey))
	return err
}

// Ping checks the index and the object store (for health checks).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.d.Ping(ctx); err != nil {
		return fmt.Errorf("arweave: index: %w", err)
	}
	if s.obj != nil {
		if err := s.obj.Ping(ctx); err != nil {
			return fmt.Errorf("arweave: objects: %w", err)
		}
	}
	return nil
}

// blockID derives a block id from its contents (48 bytes, as Arweave's indep_hash).
func blockID(previous string, height, timestamp, lastSeq int64) string {
	var buf [24]byte
	binary.BigEndian.PutUint64(buf[0:], uint64(height))
	binary.BigEndian.PutUint64(buf[8:], uint64(timestamp))
	binary.BigEndian.PutUint64(buf[16:], uint64(lastSeq))
	h := sha512.Sum384(append([]byte(previous), buf[:]...))
	return ans104.Base64URL(h[:])
}

// Statements of the hot write path, prepared once at Open on the writer
// connection (preparing later would wait for the connection a transaction holds).
const (
	sqlInsertItem = `INSERT INTO items(id, sig_type, signature, owner, owner_address, target, anchor, data_size, data_offset, content_type, bundled_in, stored_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING RETURNING seq`
	sqlInsertRaw = `INSERT INTO raws(seq, raw) VALUES (?, ?)`
	sqlInsertTag = `INSERT INTO tags(item_seq, idx, name, value) VALUES (?, ?, ?, ?)`
)

func (s *Store) prepare(ctx context.Context) error {
	for _, q := range []string{sqlInsertItem, sqlInsertRaw, sqlInsertTag} {
		st, err := s.d.Prepare(ctx, q)
		if err != nil {
			return fmt.Errorf("arweave: prepare: %w", err)
		}
		s.stmts[q] = st
	}
	return nil
}

// exec runs a prepared statement in a write transaction.
func (s *Store) exec(tx *sqldb.Tx, query string, args ...any) (sql.Result, error) {
	return tx.ExecStmt(s.stmts[query], query, args...)
}

// write runs op in a committed transaction, possibly shared with other writes.
func (s *Store) write(ctx context.Context, op func(tx *sqldb.Tx) error) error {
	return s.d.Write(ctx, op)
}

// MaxBundleDepth bounds how deeply nested bundles are unpacked and indexed.
const MaxBundleDepth = 4

// Put verifies and stores a data item; if it is a bundle (Bundle-Format:
// binary, Bundle-Version: 2.0.0) its items are verified and indexed too, with
// bundledIn set. It reports whether the top item was new. Nothing is stored
// unless everything verifies.
func (s *Store) Put(ctx context.Context, d *ans104.DataItem) (bool, error) {
	return s.put(ctx, d, false)
}

// put stores d and, when forward is set and d is new, queues it for the
// bundler in the same transaction, so that nothing stored is left unforwarded.
func (s *Store) put(ctx context.Context, d *ans104.DataItem, forward bool) (bool, error) {
	var items []indexed
	if err := collect(d, "", 0, &items); err != nil {
		return false, err
	}
	if err := s.putObjects(ctx, items); err != nil {
		return false, err
	}
	var isNew bool
	err := s.write(ctx, func(tx *sqldb.Tx) error {
		isNew = false
		if err := s.lockInserts(tx); err != nil {
			return err
		}
		for i, it := range items {
			n, err := s.insertItem(tx, it)
			if err != nil {
				return err
			}
			if i == 0 {
				isNew = n
			}
		}
		if forward && isNew {
			if _, err := tx.Exec(`INSERT INTO forward_queue(id, next_ms) VALUES (?, ?) ON CONFLICT(id) DO NOTHING`, d.ID(), s.now().UnixMilli()); err != nil {
				return fmt.Errorf("arweave: queue %s for the bundler: %w", d.ID(), err)
			}
		}
		return nil
	})
	return isNew, err
}

// PutBundle verifies and stores every item of a raw binary bundle (not wrapped
// in a data item), returning their ids.
func (s *Store) PutBundle(ctx context.Context, b []byte) ([]string, error) {
	parts, err := ans104.ParseBundle(b)
	if err != nil {
		return nil, &InvalidError{err}
	}
	var items []indexed
	var ids []string
	for _, p := range parts {
		if err := collect(p, "", 0, &items); err != nil {
			return nil, err
		}
		ids = append(ids, p.ID())
	}
	if err := s.putObjects(ctx, items); err != nil {
		return nil, err
	}
	return ids, s.write(ctx, func(tx *sqldb.Tx) error {
		if err := s.lockInserts(tx); err != nil {
			return err
		}
		for _, it := range items {
			if _, err := s.insertItem(tx, it); err != nil {
				return err
			}
		}
		return nil
	})
}

// InvalidError reports an item that is malformed or fails verification.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

type indexed struct {
	d         *ans104.DataItem
	bundledIn string
}

func collect(d *ans104.DataItem, parent string, depth int, out *[]indexed) error {
	if err := d.Verify(); err != nil {
		if parent != "" {
			return &InvalidError{fmt.Errorf("bundled item %s (in %s): %w", d.ID(), parent, err)}
		}
		return &InvalidError{fmt.Errorf("item %s: %w", d.ID(), err)}
	}
	*out = append(*out, indexed{d, parent})
	if !d.IsBundle() {
		return nil
	}
	if depth >= MaxBundleDepth {
		return &InvalidError{fmt.Errorf("bundles nested deeper than %d", MaxBundleDepth)}
	}
	children, err := ans104.ParseBundle(d.Data)
	if err != nil {
		return &InvalidError{fmt.Errorf("item %s is tagged as a bundle: %w", d.ID(), err)}
	}
	for _, c := range children {
		if err := collect(c, d.ID(), depth+1, out); err != nil {
			return err
		}
	}
	return nil
}

// putObjects writes the items' bytes to object storage before they are
// indexed, so that the index never names an item whose bytes are missing
// (ids are content addresses: a repeated put writes the same bytes).
func (s *Store) putObjects(ctx context.Context, items []indexed) error {
	if s.obj == nil {
		return nil
	}
	for _, it := range items {
		if err := s.obj.Put(ctx, objectKey(it.d.ID()), it.d.Bytes()); err != nil {
			return fmt.Errorf("arweave: store %s: %w", it.d.ID(), err)
		}
	}
	return nil
}

// objectKey is where an item's bytes are in object storage.
func objectKey(id string) string { return "items/" + id }

func (s *Store) insertItem(tx *sqldb.Tx, it indexed) (bool, error) {
	d := it.d
	ct, _ := d.Tag("Content-Type")
	var seq int64
	err := tx.QueryRowStmt(s.stmts[sqlInsertItem], sqlInsertItem,
		d.ID(), int(d.Type), d.Signature, d.Owner, d.OwnerAddress(), ans104.Base64URL(d.Target), d.Anchor,
		len(d.Data), len(d.Bytes())-len(d.Data), ct, it.bundledIn, s.now().UnixMilli()).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // already stored: uploads are idempotent
	}
	if err != nil {
		return false, fmt.Errorf("arweave: insert %s: %w", d.ID(), err)
	}
	if s.obj == nil {
		if _, err := s.exec(tx, sqlInsertRaw, seq, d.Bytes()); err != nil {
			return false, fmt.Errorf("arweave: insert %s: %w", d.ID(), err)
		}
	}
	for i, t := range d.Tags {
		if _, err := s.exec(tx, sqlInsertTag, seq, i, t.Name, t.Value); err != nil {
			return false, fmt.Errorf("arweave: insert %s tags: %w", d.ID(), err)
		}
	}
	return true, nil
}

// Mine puts every pending item into a new block, if there is any. It reports
// the block and whether one was made.
func (s *Store) Mine(ctx context.Context) (Block, bool, error) {
	var b Block
	var made bool
	err := s.write(ctx, func(tx *sqldb.Tx) error {
		made = false
		if err := s.lockBlocks(tx); err != nil {
			return err
		}
		var lastSeq sql.NullInt64
		var n int
		if err := tx.QueryRow(`SELECT MAX(seq), COUNT(*) FROM items WHERE height IS NULL`).Scan(&lastSeq, &n); err != nil {
			return fmt.Errorf("arweave: mine: %w", err)
		}
		if n == 0 {
			return nil
		}
		s.mu.RLock()
		prev := s.current
		s.mu.RUnlock()
		if tx.Postgres() { // another gateway may have cut blocks since
			var err error
			if prev, err = blockAt(tx.QueryRow, -1); err != nil {
				return fmt.Errorf("arweave: mine: %w", err)
			}
		}
		b = Block{Height: prev.Height + 1, Previous: prev.ID, Timestamp: max(s.now().Unix(), prev.Timestamp), Items: n}
		b.ID = blockID(prev.ID, b.Height, b.Timestamp, lastSeq.Int64)
		if _, err := tx.Exec(`INSERT INTO blocks(height, id, previous, timestamp, items) VALUES (?, ?, ?, ?, ?)`, b.Height, b.ID, b.Previous, b.Timestamp, n); err != nil {
			return fmt.Errorf("arweave: mine: %w", err)
		}
		if _, err := tx.Exec(`UPDATE items SET height = ? WHERE height IS NULL AND seq <= ?`, b.Height, lastSeq.Int64); err != nil {
			return fmt.Errorf("arweave: mine: %w", err)
		}
		made = true
		return nil
	})
	if err != nil || !made {
		return b, false, err
	}
	s.mu.Lock()
	s.current = b
	s.mu.Unlock()
	return b, true, nil
}

// MineEvery cuts a block every interval while there are new items, until ctx ends.
func (s *Store) MineEvery(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
			if _, _, err := s.Mine(ctx); err != nil && onErr != nil && !errors.Is(err, sqldb.ErrClosed) {
				onErr(err)
			}
			if s.d.Postgres() { // follow the blocks other gateways cut
				if b, err := s.blockAt(ctx, -1); err == nil {
					s.mu.Lock()
					if b.Height > s.current.Height {
						s.current = b
					}
					s.mu.Unlock()
				}
			}
		}
	}
}

// Current returns the newest block.
func (s *Store) Current() Block {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current
}

// Block returns the block at height.
func (s *Store) Block(ctx context.Context, height int64) (Block, error) {
	if height < 0 {
		return Block{}, ErrNotFound
	}
	return s.blockAt(ctx, height)
}

func (s *Store) blockAt(ctx context.Context, height int64) (Block, error) {
	return blockAt(func(q string, args ...any) *sql.Row { return s.d.QueryRow(ctx, q, args...) }, height)
}

// blockAt reads the block at height, or the newest for height -1.
func blockAt(queryRow func(q string, args ...any) *sql.Row, height int64) (Block, error) {
	q := `SELECT height, id, previous, timestamp, items FROM blocks WHERE height = ?`
	args := []any{height}
	if height < 0 {
		q, args = `SELECT height, id, previous, timestamp, items FROM blocks ORDER BY height DESC LIMIT 1`, nil
	}
	var b Block
	err := queryRow(q, args...).Scan(&b.Height, &b.ID, &b.Previous, &b.Timestamp, &b.Items)
	if errors.Is(err, sql.ErrNoRows) {
		return b, ErrNotFound
	}
	return b, err
}

// Raw returns the stored bytes of the item with the given id.
func (s *Store) Raw(ctx context.Context, id string) ([]byte, error) {
	var raw []byte
	err := s.d.QueryRow(ctx, `SELECT r.raw FROM items i JOIN raws r ON r.seq = i.seq WHERE i.id = ?`, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) && s.obj != nil {
		var n int
		if err := s.d.QueryRow(ctx, `SELECT 1 FROM items WHERE id = ?`, id).Scan(&n); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, ErrNotFound
			}
			return nil, fmt.Errorf("arweave: read %s: %w", id, err)
		}
		raw, err = s.obj.Get(ctx, objectKey(id), 0)
		if err != nil {
			return nil, fmt.Errorf("arweave: read %s: %w", id, err)
		}
		return raw, nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("arweave: read %s: %w", id, err)
	}
	return raw, nil
}

// Get returns the indexed item with the given id.
func (s *Store) Get(ctx context.Context, id string) (*Item, error) {
	items, _, err := s.Query(ctx, Query{IDs: []string{id}, First: 1})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, ErrNotFound
	}
	return items[0], nil
}

// Data returns the item and its data bytes.
func (s *Store) Data(ctx context.Context, id string) (*Item, []byte, error) {
	it, err := s.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	data, err := s.itemData(ctx, it)
	if err != nil {
		return nil, nil, err
	}
	return it, data, nil
}

// itemData returns the data bytes of it, an item Get returned: a caller that
// needs the item's metadata before its data (the gateway sizes its read
// share by DataSize) reads the item row once.
func (s *Store) itemData(ctx context.Context, it *Item) ([]byte, error) {
	raw, err := s.Raw(ctx, it.ID)
	if err != nil {
		return nil, err
	}
	return raw[int64(len(raw))-it.DataSize:], nil
}

// TagFilter matches items having a tag named Name whose value is any of Values.
type TagFilter struct {
	Name   string
	Values []string
	Not    bool // the NEQ operator: the tag is present with a value not in Values
}

// Query selects items as GraphQL's transactions connection does. Filters of
// different kinds are ANDed, values within one filter ORed.
type Query struct {
	IDs        []string
	Owners     []string // addresses, or full owner keys (base64url)
	Recipients []string
	BundledIn  []string
	Tags       []TagFilter
	MinHeight  *int64 // inclusive; pending items never match a height filter
	MaxHeight  *int64
	First      int    // page size, 1 to MaxPage (default 10)
	After      string // cursor of the last item of the previous page
	Ascending  bool   // HEIGHT_ASC; default HEIGHT_DESC (newest, including pending, first)
}

// Page limits of the transactions connection.
const (
	DefaultPage = 10
	MaxPage     = 100
	maxValues   = 1000 // values in one filter list
	// maxTagFilters and maxQueryValues bound the SQL one query builds: each
	// tag filter is a subquery (and a selectivity probe), each value a
	// parameter. AO's clients send at most a few filters.
	maxTagFilters  = 50
	maxQueryValues = 5000
)

// Cursor returns the opaque cursor of an item.
func Cursor(seq int64) string {
	return ans104.Base64URL(binary.BigEndian.AppendUint64(nil, uint64(seq)))
}

func parseCursor(c string) (int64, error) {
	b, err := ans104.DecodeBase64URL(c)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("invalid cursor %q", c)
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// QueryError reports an invalid query (the caller's fault).
type QueryError struct{ Msg string }

func (e *QueryError) Error() string { return e.Msg }

// Query runs q and reports whether more items follow the page. Items are
// ordered by indexing order, which is height order because blocks take the
// pending items in the order they were stored; that keeps cursors stable
// while new blocks are cut.
func (s *Store) Query(ctx context.Context, q Query) ([]*Item, bool, error) {
	first := pageSize(q.First)
	if len(q.Tags) > maxTagFilters {
		return nil, false, &QueryError{fmt.Sprintf("at most %d tag filters", maxTagFilters)}
	}
	total := len(q.IDs) + len(q.Owners) + len(q.Recipients) + len(q.BundledIn)
	for _, t := range q.Tags {
		total += len(t.Values)
	}
	if total > maxQueryValues {
		return nil, false, &QueryError{fmt.Sprintf("at most %d filter values in all", maxQueryValues)}
	}
	var where []string
	var args []any
	in := func(col string, vals []string) error {
		if len(vals) > maxValues {
			return &QueryError{fmt.Sprintf("at most %d values per filter", maxValues)}
		}
		where = append(where, col+" IN ("+placeholders(len(vals))+")")
		for _, v := range vals {
			args = append(args, v)
		}
		return nil
	}
	if q.IDs != nil {
		if err := in("i.id", q.IDs); err != nil {
			return nil, false, err
		}
	}
	if q.Owners != nil {
		// An owner is an address or a full public key (ar.io accepts both). A
		// 43-character string can be either (an Ed25519 key is 32 bytes too),
		// so it matches both readings.
		owners := make([]string, 0, 2*len(q.Owners))
		for _, o := range q.Owners {
			if len(o) <= 43 {
				owners = append(owners, o)
			}
			if len(o) >= 43 {
				if key, err := ans104.DecodeBase64URL(o); err == nil {
					owners = append(owners, ans104.Address(key))
				}
			}
		}
		if err := in("i.owner_address", owners); err != nil {
			return nil, false, err
		}
	}
	if q.Recipients != nil {
		if err := in("i.target", q.Recipients); err != nil {
			return nil, false, err
		}
	}
	if q.BundledIn != nil {
		if err := in("i.bundled_in", q.BundledIn); err != nil {
			return nil, false, err
		}
	}
	// Tag filters: the most selective one (found by a bounded probe) drives the
	// query through the (name, value, item_seq) index; the others are checked
	// per item. When none is selective (Data-Protocol=ao matches nearly
	// everything) the newest items are scanned and checked, which stops after
	// one page.
	drive := -1
	if q.IDs == nil && len(q.Tags) > 0 {
		best := probeCap
		for i, t := range q.Tags {
			if t.Not || len(t.Values) == 0 || len(t.Values) > maxValues {
				continue
			}
			n, err := s.probe(ctx, t)
			if err != nil {
				return nil, false, err
			}
			if n < best {
				drive, best = i, n
			}
		}
	}
	for i, t := range q.Tags {
		if len(t.Values) > maxValues {
			return nil, false, &QueryError{fmt.Sprintf("at most %d values per tag filter", maxValues)}
		}
		if len(t.Values) == 0 {
			return nil, false, &QueryError{fmt.Sprintf("tag filter %q has no values", t.Name)}
		}
		op := "IN"
		if t.Not {
			op = "NOT IN"
		}
		if i == drive {
			where = append(where, "i.seq IN (SELECT item_seq FROM tags WHERE name = ? AND value "+op+" ("+placeholders(len(t.Values))+"))")
		} else {
			where = append(where, "EXISTS (SELECT 1 FROM tags t WHERE t.item_seq = i.seq AND t.name = ? AND t.value "+op+" ("+placeholders(len(t.Values))+"))")
		}
		args = append(args, t.Name)
		for _, v := range t.Values {
			args = append(args, v)
		}
	}
	if q.MinHeight != nil {
		where = append(where, "i.height >= ?")
		args = append(args, *q.MinHeight)
	}
	if q.MaxHeight != nil {
		where = append(where, "i.height <= ?")
		args = append(args, *q.MaxHeight)
	}
	where, args, order, err := window("i.seq", q.After, q.Ascending, where, args)
	if err != nil {
		return nil, false, err
	}
	sqlq := `SELECT i.seq, i.id, i.sig_type, i.signature, i.owner, i.owner_address, i.target, i.anchor, i.data_size,
		i.content_type, i.bundled_in, i.stored_ms, b.height, b.id, b.previous, b.timestamp
		FROM items i LEFT JOIN blocks b ON b.height = i.height`
	if len(where) > 0 {
		sqlq += " WHERE " + strings.Join(where, " AND ")
	}
	sqlq += order
	args = append(args, first+1)

	rows, err := s.d.Query(ctx, sqlq, args...)
	if err != nil {
		return nil, false, fmt.Errorf("arweave: query: %w", err)
	}
	defer rows.Close()
	var items []*Item
	bySeq := map[int64]*Item{}
	for rows.Next() {
		var it Item
		var typ int
		var storedMs int64
		var bh, bts sql.NullInt64
		var bid, bprev sql.NullString
		if err := rows.Scan(&it.Seq, &it.ID, &typ, &it.Signature, &it.Owner, &it.OwnerAddress, &it.Target, &it.Anchor,
			&it.DataSize, &it.ContentType, &it.BundledIn, &storedMs, &bh, &bid, &bprev, &bts); err != nil {
			return nil, false, fmt.Errorf("arweave: query: %w", err)
		}
		it.Type = ans104.SignatureType(typ)
		it.StoredAt = time.UnixMilli(storedMs)
		if bh.Valid {
			it.Block = &Block{Height: bh.Int64, ID: bid.String, Previous: bprev.String, Timestamp: bts.Int64}
		}
		items = append(items, &it)
		bySeq[it.Seq] = &it
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("arweave: query: %w", err)
	}
	more := len(items) > first
	if more {
		items = items[:first]
	}
	if len(items) == 0 {
		return items, false, nil
	}
	seqs := make([]any, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	trows, err := s.d.Query(ctx, `SELECT item_seq, name, value FROM tags WHERE item_seq IN (`+placeholders(len(seqs))+`) ORDER BY item_seq, idx`, seqs...)
	if err != nil {
		return nil, false, fmt.Errorf("arweave: query tags: %w", err)
	}
	defer trows.Close()
	for trows.Next() {
		var seq int64
		var t ans104.Tag
		if err := trows.Scan(&seq, &t.Name, &t.Value); err != nil {
			return nil, false, fmt.Errorf("arweave: query tags: %w", err)
		}
		if it := bySeq[seq]; it != nil {
			it.Tags = append(it.Tags, t)
		}
	}
	return items, more, trows.Err()
}

// pageSize applies the connection's default and maximum page size.
func pageSize(first int) int {
	if first <= 0 {
		return DefaultPage
	}
	return min(first, MaxPage)
}

// window adds the cursor condition on the ordering column col and returns the
// ORDER BY ... LIMIT clause; the caller appends the limit argument.
func window(col, after string, asc bool, where []string, args []any) ([]string, []any, string, error) {
	dir, cmp := " DESC", " < ?"
	if asc {
		dir, cmp = " ASC", " > ?"
	}
	if after != "" {
		v, err := parseCursor(after)
		if err != nil {
			return nil, nil, "", &QueryError{err.Error()}
		}
		where, args = append(where, col+cmp), append(args, v)
	}
	return where, args, " ORDER BY " + col + dir + " LIMIT ?", nil
}

// probeCap bounds the rows a selectivity probe counts.
const probeCap = 2000

// probe counts the items a tag filter matches, up to probeCap.
func (s *Store) probe(ctx context.Context, t TagFilter) (int, error) {
	args := []any{t.Name}
	for _, v := range t.Values {
		args = append(args, v)
	}
	var n int
	err := s.d.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM tags WHERE name = ? AND value IN (`+placeholders(len(t.Values))+`) LIMIT `+fmt.Sprint(probeCap)+`) AS p`, args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("arweave: query: %w", err)
	}
	return n, nil
}

func placeholders(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.Repeat("?,", n-1) + "?"
}

// BlockQuery selects blocks as GraphQL's blocks connection does.
type BlockQuery struct {
	IDs       []string
	MinHeight *int64
	MaxHeight *int64
	First     int
	After     string
	Ascending bool
}

// Blocks runs q and reports whether more blocks follow.
func (s *Store) Blocks(ctx context.Context, q BlockQuery) ([]Block, bool, error) {
	first := pageSize(q.First)
	var where []string
	var args []any
	if q.IDs != nil {
		if len(q.IDs) > maxValues {
			return nil, false, &QueryError{fmt.Sprintf("at most %d ids", maxValues)}
		}
		where = append(where, "id IN ("+placeholders(len(q.IDs))+")")
		for _, v := range q.IDs {
			args = append(args, v)
		}
	}
	if q.MinHeight != nil {
		where, args = append(where, "height >= ?"), append(args, *q.MinHeight)
	}
	if q.MaxHeight != nil {
		where, args = append(where, "height <= ?"), append(args, *q.MaxHeight)
	}
	where, args, order, err := window("height", q.After, q.Ascending, where, args)
	if err != nil {
		return nil, false, err
	}
	sqlq := `SELECT height, id, previous, timestamp, items FROM blocks`
	if len(where) > 0 {
		sqlq += " WHERE " + strings.Join(where, " AND ")
	}
	sqlq += order
	args = append(args, first+1)
	rows, err := s.d.Query(ctx, sqlq, args...)
	if err != nil {
		return nil, false, fmt.Errorf("arweave: blocks: %w", err)
	}
	defer rows.Close()
	var out []Block
	for rows.Next() {
		var b Block
		if err := rows.Scan(&b.Height, &b.ID, &b.Previous, &b.Timestamp, &b.Items); err != nil {
			return nil, false, err
		}
		out = append(out, b)
	}
	more := len(out) > first
	if more {
		out = out[:first]
	}
	return out, more, rows.Err()
}
