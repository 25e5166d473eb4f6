package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

func TestGroupCommitAndIsolation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "t.db")
	d, err := Open(ctx, path, `CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`, 2)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Write(ctx, func(tx *sql.Tx) error {
				if i%10 == 7 { // a failing write must not take the others down
					_, err := tx.Exec(`INSERT INTO t VALUES (?, NULL)`, i)
					return err
				}
				_, err := tx.Exec(`INSERT INTO t VALUES (?, ?)`, i, fmt.Sprint(i))
				return err
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i%10 == 7) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx, func(*sql.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	d, err = Open(ctx, path, `CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.Read.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 180 {
		t.Fatalf("%d rows after reopening (%v), want 180", n, err)
	}
	if _, err := d.Read.Exec(`INSERT INTO t VALUES (1000, 'x')`); err == nil {
		t.Fatal("the read pool accepted a write")
	}
}
