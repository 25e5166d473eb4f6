package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

// engineRun is what one engine made of a message sequence: each result
// (as JSON, with the fuel it burnt) and the memory's size and SHA-256 after
// it.
type engineRun struct {
	results []string
	mems    []string
}

func runOnEngine(t *testing.T, engine, file, format string, cfg Config, msgs [][]byte) engineRun {
	t.Helper()
	m, err := Compile(context.Background(), interop.WaoModule(t, file), Options{
		Format: format, Extensions: []string{ExtensionWeaveDrive}, Engine: engine,
		CacheDir: filepath.Join(interop.CacheDir(t), "wazero"),
	})
	if err != nil {
		t.Fatalf("%s: compile %s: %v", engine, file, err)
	}
	defer m.Close(context.Background())
	if m.Engine() != engine {
		t.Fatalf("compiled with %s, want %s", m.Engine(), engine)
	}
	in, err := m.Instantiate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	env := testEnv(t)
	var run engineRun
	for i, msg := range msgs {
		r, err := in.Handle(context.Background(), msg, env)
		if err != nil {
			t.Fatalf("%s: message %d: %v", engine, i, err)
		}
		b, _ := json.Marshal(r)
		img, _ := in.vm.mem.Read(0, in.vm.mem.Size())
		sum := sha256.Sum256(img)
		// Fuel is not marshalled; it meters work, so the engines must agree on it.
		run.results = append(run.results, string(b)+" fuel "+strconv.FormatUint(r.Fuel, 10))
		run.mems = append(run.mems, hex.EncodeToString(sum[:8])+" "+strconv.Itoa(len(img)))
	}
	// And the memory as a checkpoint sees it, after a rebase.
	snap, err := in.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(snap)
	run.mems = append(run.mems, "snapshot "+hex.EncodeToString(sum[:]))
	return run
}

// floatScript stores NaNs of every origin (whose sign and payload the
// hardware, not the wasm spec, decides) and other float edge cases in Lua
// values, so that their bits reach the memory hash.
func floatScript(t *testing.T) [][]byte {
	s := &script{t: t}
	s.boot()
	s.eval(`F = { 0/0, -(0/0), math.huge - math.huge, math.sqrt(-1), math.fmod(1, 0.0), math.huge * 0,
  math.min(0/0, 1), math.max(1, 0/0), math.min(-0.0, 0.0), math.max(-0.0, 0.0), math.floor(-0.5), 1e308 * 10,
  math.tointeger(2^53), 2^63, 7 // 0.0, -7 // 0.0, 0.0 / -1, math.abs(-0.0), 3 % -2.0, -3 % math.huge }
local out = {} for i = 1, #F do out[i] = tostring(F[i]) .. "/" .. string.format("%q", string.pack("<d", F[i] + 0.0)) end
return table.concat(out, " ")`)
	s.eval(`local t = {} for i = 1, 2000 do t[i] = math.sin(i) * 1e10 / math.cos(i) end
local u = {} for i = 1, 2000, 97 do u[#u + 1] = string.format("%.17g", t[i]) end return table.concat(u, ",")`)
	s.eval(`return math.tointeger(3.0) .. " " .. 3 // 0.5 .. " " .. math.type(1 // 1) .. " " .. string.format("%.3f %g %a", 1/3, 1e-310, 0.1)`)
	return s.msgs
}

// TestEnginesAgree runs the differential scripts (aos 2.0.4, the wasm64
// builds, the -metering formats, the SQLite workload, messages stopped by
// the fuel limit and by the gas limit) on every engine built into the test
// binary (wazero, and Wasmtime under -tags wasmtime) and requires identical
// results and identical memory after every message: CUs on different
// engines must agree. With one engine it checks nothing and skips.
func TestEnginesAgree(t *testing.T) {
	engs := Engines()
	if len(engs) < 2 {
		t.Skipf("only %v built in (go test -tags wasmtime runs this)", engs)
	}
	runaway := func(t *testing.T) [][]byte {
		s := diffScript(t)
		msgs := s.msgs[:12]
		s2 := &script{t: t, nonce: s.nonce}
		msgs = append(msgs, s2.eval(`X = 2; local i = 0; while true do i = i + 1 end`), s2.eval(`return X`))
		return msgs
	}
	cases := []struct {
		name, file, format string
		cfg                Config
		msgs               func(t *testing.T) [][]byte
	}{
		{"aos2.0.4", aosFile, FormatEmscripten4, Config{}, func(t *testing.T) [][]byte { return diffScript(t).msgs }},
		{"wasm64-aos2.0.6", "aos2_0_6.wasm", FormatWasm64, Config{}, func(t *testing.T) [][]byte { return diffScript(t).msgs }},
		{"wasm64-aos2.0.1", "aos2_0_1.wasm", FormatWasm64, Config{}, func(t *testing.T) [][]byte { return diffScript(t).msgs[:meteredScriptLen] }},
		{"metering-wasm32", aosFile, FormatEmscriptenMetering, Config{}, func(t *testing.T) [][]byte { return diffScript(t).msgs[:meteredScriptLen] }},
		{"metering-wasm64", "aos2_0_6.wasm", FormatWasm64Metering, Config{}, func(t *testing.T) [][]byte { return diffScript(t).msgs[:meteredScriptLen] }},
		{"out-of-gas", aosFile, FormatEmscriptenMetering, Config{ComputeLimit: outOfGasLimit}, func(t *testing.T) [][]byte { return outOfGasScript(t).msgs }},
		{"sqlite", "sqlite.wasm", FormatWasm64, Config{}, func(t *testing.T) [][]byte { return sqliteScript(t).msgs }},
		{"fuel-limit", aosFile, FormatEmscripten4, Config{FuelLimit: 20_000_000_000}, runaway},
		{"floats", aosFile, FormatEmscripten4, Config{}, floatScript},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs := c.msgs(t)
			runs := map[string]engineRun{}
			for _, e := range engs {
				runs[e] = runOnEngine(t, e, c.file, c.format, c.cfg, msgs)
			}
			ref := runs[engs[0]]
			for _, e := range engs[1:] {
				got := runs[e]
				for i := range msgs {
					if got.results[i] != ref.results[i] {
						t.Errorf("message %d (%.50s): %s gives\n%s\n%s gives\n%s", i, msgs[i], e, got.results[i], engs[0], ref.results[i])
					}
				}
				for i := range ref.mems {
					if got.mems[i] != ref.mems[i] {
						t.Errorf("memory after message %d: %s %s, %s %s", i, e, got.mems[i], engs[0], ref.mems[i])
					}
				}
			}
			failed := 0
			for _, r := range ref.results {
				if strings.Contains(r, `"Error"`) {
					failed++
				}
			}
			if c.name == "fuel-limit" && !strings.Contains(ref.results[len(msgs)-2], ErrFuelExhausted.Error()) {
				t.Errorf("the runaway message was not stopped by the fuel limit: %s", ref.results[len(msgs)-2])
			}
			if c.name == "out-of-gas" && !bytes.Contains([]byte(ref.results[2]), []byte("out of gas!")) {
				t.Errorf("message 2 did not run out of gas: %s", ref.results[2])
			}
			t.Logf("%d messages (%d failed, rolled back) on %v: identical results and memory", len(msgs), failed, engs)
		})
	}
}
