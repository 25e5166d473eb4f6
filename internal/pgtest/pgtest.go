// Package pgtest gives tests a PostgreSQL schema of their own on the
// machine's server (127.0.0.1:5432, database test): tests of several packages
// and of other checkouts share that database, so each test works in a fresh
// schema, dropped when it ends. A test skips when PostgreSQL is unreachable,
// and fails instead when AONODE_REQUIRE_POSTGRES is set (CI).
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// URL finds a reachable server ("" when none, after failing the test when
// PostgreSQL is required).
func URL(t testing.TB) string {
	t.Helper()
	for _, u := range []string{os.Getenv("AONODE_TEST_POSTGRES"), "postgres://postgres@127.0.0.1:5432/test", "postgres://root@127.0.0.1:5432/test"} {
		if u == "" {
			continue
		}
		db, err := sql.Open("pgx", u)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
		if err == nil {
			return u
		}
	}
	if os.Getenv("AONODE_REQUIRE_POSTGRES") != "" {
		t.Fatal("PostgreSQL is required (AONODE_REQUIRE_POSTGRES) but unreachable at 127.0.0.1:5432")
	}
	return ""
}

var seq atomic.Int64

// Schema creates a fresh schema named after prefix, dropped at the end of
// the test, and returns a URL selecting it (search_path). It skips the test
// when PostgreSQL is unreachable and not required.
func Schema(t testing.TB, prefix string) string {
	t.Helper()
	base := URL(t)
	if base == "" {
		t.Skip("PostgreSQL unreachable at 127.0.0.1:5432; set AONODE_REQUIRE_POSTGRES=1 to fail instead")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	schema := fmt.Sprintf("%s_%d_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9, seq.Add(1))
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		db.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
