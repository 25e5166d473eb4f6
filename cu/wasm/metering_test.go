package wasm

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

// Modules compiled with a -metering format, once per test binary.
var (
	meteredMu   sync.Mutex
	meteredMods = map[string]*Module{}
)

func meteredModule(t testing.TB, file, format string) *Module {
	t.Helper()
	bin := interop.WaoModule(t, file)
	meteredMu.Lock()
	defer meteredMu.Unlock()
	key := file + " " + format
	if m, ok := meteredMods[key]; ok {
		return m
	}
	m, err := Compile(context.Background(), bin, Options{
		Format:     format,
		Extensions: []string{ExtensionWeaveDrive},
		CacheDir:   filepath.Join(interop.CacheDir(t), "wazero"),
	})
	if err != nil {
		t.Fatalf("compile %s as %s: %v", file, format, err)
	}
	meteredMods[key] = m
	return m
}

const meteredScriptLen = 24

var meteredCases = []struct{ name, file, format, loader string }{
	{"wasm32", aosFile, FormatEmscriptenMetering, "loader.js"},
	{"wasm64", "aos2_0_6.wasm", FormatWasm64Metering, "loader64.js"},
}

// TestDifferentialMetering runs the aos differential script (diffScript)
// with the -metering formats against node ao-loader run with the same
// format: results, including GasUsed of every message, must be identical.
func TestDifferentialMetering(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test runs node")
	}
	t.Parallel()
	for _, c := range meteredCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			wasmPath := interop.WaoModulePath(t, c.file)
			m := meteredModule(t, c.file, c.format)
			// Metered code runs slowly in node (a JS call per basic block,
			// about 1 s per small aos message on this machine), so only the
			// start of the script: boot, evaluation, printing, handlers,
			// sends, spawns, assignments, Lua errors and pcall/longjmp.
			msgs := diffScript(t).msgs[:meteredScriptLen]
			n := differential(t, m, c.loader, wasmPath, c.format, msgs, testEnv(t),
				map[int]string{1: `"2"`, 5: "9223372036854775807 3 Lua 5.3", 15: "41", 16: "false caught"})
			t.Logf("%d messages: results (with GasUsed) and memory sizes identical; memory sha256 differs after %d of them", len(msgs), n)
		})
	}
}

// outOfGasScript has messages below and above a Compute-Limit of
// outOfGasLimit (aos 2.0.4 boots for about 1.1e10 gas; a 100k-iteration
// loop costs about 2.4e9).
const outOfGasLimit = 20_000_000_000

func outOfGasScript(t testing.TB) *script {
	s := &script{t: t}
	s.boot()
	s.eval(`X = 1; return 1+1`)
	s.eval(`X = 2; local n = 0 for i = 1, 1000000 do n = n + i % 7 end return n`) // out of gas
	s.eval(`return X`)
	s.eval(`local n = 0 for i = 1, 100000 do n = n + i % 7 end return n`)
	s.eval(`Handlers.add("spin", "Spin", function (m) X = 3; local n = 0 while true do n = n + 1 end end); return "ok"`)
	s.send(otherAddr, "", tag{"Action", "Spin"}) // out of gas inside a handler (under pcall)
	s.eval(`return X`)
	s.eval(`return string.rep("x", 1000):len()`)
	return s
}

// TestDifferentialOutOfGas runs messages that exceed a small Compute-Limit,
// here and in node (interop/loaderlimit.js): the same results ("out of gas!"
// errors, then the state from before the failed message) and GasUsed.
func TestDifferentialOutOfGas(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test runs node")
	}
	t.Parallel()
	for _, c := range meteredCases[:1] {
		t.Run(c.name, func(t *testing.T) {
			wasmPath := interop.WaoModulePath(t, c.file)
			m := meteredModule(t, c.file, c.format)
			s := outOfGasScript(t)
			differentialCfg(t, m, Config{ComputeLimit: outOfGasLimit},
				[]string{"AO_COMPUTE_LIMIT=" + strconv.Itoa(outOfGasLimit)},
				"loaderlimit.js", wasmPath, c.format, s.msgs, testEnv(t),
				map[int]string{1: `"2"`, 3: `\n\n1"`, 7: `\n\n1"`, 8: "1000"})

			// The same, checked directly: out of gas is a failed result with
			// the reference's message, and the memory is rolled back.
			in, err := m.Instantiate(context.Background(), Config{ComputeLimit: outOfGasLimit})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close(context.Background())
			env := testEnv(t)
			for i, msg := range s.msgs {
				r := mustHandle(t, in, msg, env)
				oog := i == 2 || i == 6
				if got := string(r.Error) == `"out of gas!"`; got != oog {
					t.Errorf("message %d: error %s", i, r.Error)
				}
				if oog && r.GasUsed <= outOfGasLimit || !oog && (r.GasUsed == 0 || r.GasUsed > outOfGasLimit) {
					t.Errorf("message %d: GasUsed %d with limit %d", i, r.GasUsed, uint64(outOfGasLimit))
				}
			}
		})
	}
}

func TestMeteringGasPerMessage(t *testing.T) {
	m := meteredModule(t, aosFile, FormatEmscriptenMetering)
	in, err := m.Instantiate(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	env := testEnv(t)
	s := &script{t: t}
	var gas []uint64
	for _, msg := range [][]byte{s.boot(), s.eval("return 1+1"), s.eval("return 1+1")} {
		r := mustHandle(t, in, msg, env)
		if r.Failed() {
			t.Fatalf("error %s", r.Error)
		}
		gas = append(gas, r.GasUsed)
	}
	// GasUsed is per message: the boot (in the first handle) costs far more,
	// and the same evaluation costs about the same again.
	if gas[0] < 1e9 || gas[1] == 0 || gas[1] > gas[0]/4 || gas[2] == 0 || gas[2] > 2*gas[1] {
		t.Errorf("GasUsed per message: %v", gas)
	}
	t.Logf("GasUsed: boot %d, return 1+1: %d, %d", gas[0], gas[1], gas[2])
}

// BenchmarkPingMetering is BenchmarkPing (aos 2.0.4) with the
// wasm32-unknown-emscripten-metering format: compare the msg/s figures.
func BenchmarkPingMetering(b *testing.B) {
	benchPing(b, meteredModule(b, aosFile, FormatEmscriptenMetering))
}
