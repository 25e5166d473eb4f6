package sqldb

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aonode/aonode/internal/pgtest"
)

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"a = '?' AND b = ?", "a = '?' AND b = $1"},
	} {
		if got := Rebind(tc.in); got != tc.want {
			t.Errorf("Rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPGSchema(t *testing.T) {
	got := PGSchema("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, b BLOB)")
	want := "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, b BYTEA)"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

const testSchema = `
CREATE TABLE IF NOT EXISTS kv (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	k  TEXT NOT NULL UNIQUE,
	v  BLOB NOT NULL,
	n  INTEGER NOT NULL
);`

// TestEngines runs the same statements on both engines: the common dialect
// the units rely on (RETURNING on an upsert, ? placeholders, 64-bit integers).
func TestEngines(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var d *DB
			var err error
			if name == "sqlite" {
				d, err = OpenSQLite(ctx, filepath.Join(t.TempDir(), "t.db"), testSchema, 2)
			} else {
				dsn := pgtest.Schema(t, "sqldb_test")
				d, err = OpenPostgres(ctx, dsn, testSchema, 4)
				if err == nil { // a second opener finds the schema in place
					d2, err2 := OpenPostgres(ctx, dsn, testSchema, 2)
					if err2 != nil {
						t.Fatal(err2)
					}
					d2.Close()
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Postgres() != (name == "postgres") {
				t.Fatal("Postgres() is wrong")
			}
			var ids []int64
			for _, k := range []string{"a", "b", "a"} {
				var id int64
				err := d.Write(ctx, func(tx *Tx) error {
					id = 0
					err := tx.QueryRow(`INSERT INTO kv(k, v, n) VALUES (?, ?, ?) ON CONFLICT(k) DO NOTHING RETURNING id`, k, []byte(k), int64(1)<<40).Scan(&id)
					if err != nil && err.Error() != "sql: no rows in result set" {
						return err
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if ids[0] == 0 || ids[1] == 0 || ids[2] != 0 {
				t.Fatalf("ids %v: want two new, the repeat 0", ids)
			}
			var n int64
			var v []byte
			if err := d.QueryRow(ctx, `SELECT n, v FROM kv WHERE k = ?`, "b").Scan(&n, &v); err != nil || n != 1<<40 || string(v) != "b" {
				t.Fatalf("read back: %d %q %v", n, v, err)
			}
			if err := d.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
