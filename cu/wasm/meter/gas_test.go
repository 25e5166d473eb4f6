package meter

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
	"github.com/aonode/aonode/internal/interop"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// refMeter runs the reference metering (interop/meter.js, @permaweb/wasm-metering
// under node) on bin. It returns the metered bytes, or the reference's error
// message.
func refMeter(t *testing.T, bin []byte, meterType string) ([]byte, string) {
	t.Helper()
	d := interop.Dir(t)
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "in.wasm"), filepath.Join(tmp, "out.wasm")
	if err := os.WriteFile(in, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(d, "meter.js"), in, out, meterType)
	cmd.Dir = d
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		if msg, ok := strings.CutPrefix(string(stdout), "@@meter-error "); ok {
			return nil, strings.TrimSpace(msg)
		}
		t.Fatalf("node meter.js: %v\n%s%s", err, stdout, stderr.Bytes())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, ""
}

func ourMeter(bin []byte, vt wasmbin.ValType) ([]byte, error) {
	m, err := wasmbin.Decode(bin)
	if err != nil {
		return nil, err
	}
	if err := AddGas(m, vt); err != nil {
		return nil, err
	}
	return m.Encode(), nil
}

func meterTypes() []struct {
	name string
	vt   wasmbin.ValType
} {
	return []struct {
		name string
		vt   wasmbin.ValType
	}{{"i32", wasmbin.I32}, {"i64", wasmbin.I64}}
}

// compareRef meters bin with both implementations and requires identical
// bytes.
func compareRef(t *testing.T, bin []byte) {
	t.Helper()
	for _, mt := range meterTypes() {
		want, refErr := refMeter(t, bin, mt.name)
		if refErr != "" {
			t.Fatalf("%s: reference failed: %s", mt.name, refErr)
		}
		got, err := ourMeter(bin, mt.vt)
		if err != nil {
			t.Fatalf("%s: AddGas: %v", mt.name, err)
		}
		if !bytes.Equal(got, want) {
			at := 0
			for at < len(got) && at < len(want) && got[at] == want[at] {
				at++
			}
			t.Fatalf("%s: got %d bytes, reference %d; first difference at %#x\ngot  % x\nwant % x",
				mt.name, len(got), len(want), at, window(got, at), window(want, at))
		}
	}
}

func window(b []byte, at int) []byte {
	lo, hi := max(at-16, 0), min(at+16, len(b))
	return b[lo:hi]
}

func emptyModule(t *testing.T) *wasmbin.Module {
	t.Helper()
	m, err := wasmbin.Decode([]byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func imm(op wasmbin.Opcode, b ...byte) wasmbin.Instr { return wasmbin.Instr{Op: op, Imm: b} }

var (
	op   = wasmbin.Op
	idx  = wasmbin.OpIndex
	i32  = wasmbin.I32Const
	void = wasmbin.BlockVoid
	end  = wasmbin.Op(wasmbin.OpEnd)
)

const (
	opI32Add   wasmbin.Opcode = 0x6a
	opI32Sub   wasmbin.Opcode = 0x6b
	opI32DivS  wasmbin.Opcode = 0x6d
	opI32RemU  wasmbin.Opcode = 0x70
	opF32Div   wasmbin.Opcode = 0x95
	opF32Lt    wasmbin.Opcode = 0x5d
	opI32Wrap  wasmbin.Opcode = 0xa7
	opSelect   wasmbin.Opcode = 0x1b
	opI32Load  wasmbin.Opcode = 0x28
	opI32Store wasmbin.Opcode = 0x36
)

// nameSection is a "name" custom section naming functions 2 and 3.
var nameSection = []byte("\x01\x0d\x02\x02\x05start\x03\x03one")

// richModule has imports of every kind (two functions, so usegas becomes
// function 2 and goes after the memory and global imports), a start
// function, a table with an element segment, exports of functions and a
// global, a name section, and bodies using every segment terminator:
//
//	0 env.f () ; 1 env.h (i32)->i32 ; memory js.mem ; global js.g i32
//	2 $start: nop
//	3 $one () -> i32: i32.const 1
//	4 $sum (i32) -> i32, local i32: loop … call $one … br_if 0 end local.get 1
//	5 $flow (i32) -> i32: br_table over three cases (see below)
func richModule(t *testing.T) []byte {
	m := emptyModule(t)
	m.Types = []wasmbin.FuncType{
		{},
		{Params: []wasmbin.ValType{wasmbin.I32}, Results: []wasmbin.ValType{wasmbin.I32}},
		{Results: []wasmbin.ValType{wasmbin.I32}},
	}
	m.Imports = []wasmbin.Import{
		{Module: "env", Name: "f", Kind: wasmbin.KindFunc, Type: 0},
		{Module: "js", Name: "mem", Kind: wasmbin.KindMemory, Memory: wasmbin.Limits{Flags: 1, Min: 1, Max: 4}},
		{Module: "env", Name: "h", Kind: wasmbin.KindFunc, Type: 1},
		{Module: "js", Name: "g", Kind: wasmbin.KindGlobal, Global: wasmbin.GlobalType{Type: wasmbin.I32}},
	}
	m.Funcs = []uint32{0, 2, 1, 1}
	m.Tables = []wasmbin.Table{{Elem: wasmbin.FuncRef, Limits: wasmbin.Limits{Min: 2}}}
	m.Globals = []wasmbin.Global{{Type: wasmbin.GlobalType{Type: wasmbin.I32, Mutable: true}, Init: []wasmbin.Instr{i32(-5), end}}}
	m.Exports = []wasmbin.Export{
		{Name: "one", Kind: wasmbin.KindFunc, Index: 3},
		{Name: "sum", Kind: wasmbin.KindFunc, Index: 4},
		{Name: "flow", Kind: wasmbin.KindFunc, Index: 5},
		{Name: "f", Kind: wasmbin.KindFunc, Index: 0},
		{Name: "g", Kind: wasmbin.KindGlobal, Index: 1},
	}
	start := uint32(2)
	m.Start = &start
	m.Elems = []wasmbin.Elem{{Offset: []wasmbin.Instr{i32(0), end}, Funcs: []uint32{3, 5}}}
	blockI32 := imm(wasmbin.OpIf, byte(wasmbin.I32))
	m.Code = []wasmbin.Func{
		{Code: []wasmbin.Instr{op(wasmbin.OpNop), end}},
		{Code: []wasmbin.Instr{i32(1), end}},
		{Locals: []wasmbin.Locals{{N: 1, Type: wasmbin.I32}}, Code: []wasmbin.Instr{
			void(wasmbin.OpLoop),
			idx(wasmbin.OpLocalGet, 1), idx(wasmbin.OpCall, 3), op(opI32Add), idx(wasmbin.OpLocalSet, 1),
			idx(wasmbin.OpLocalGet, 0), i32(1), op(opI32Sub), idx(wasmbin.OpLocalTee, 0), idx(wasmbin.OpBrIf, 0),
			end,
			idx(wasmbin.OpLocalGet, 1), end,
		}},
		{Locals: []wasmbin.Locals{{N: 2, Type: wasmbin.I64}, {N: 1, Type: wasmbin.F32}}, Code: []wasmbin.Instr{
			void(wasmbin.OpBlock), void(wasmbin.OpBlock), void(wasmbin.OpBlock),
			idx(wasmbin.OpLocalGet, 0), imm(wasmbin.OpBrTable, 2, 0, 1, 2),
			end,
			// case 0: 100 + g (42), after a br out of a block and a call to env.f
			void(wasmbin.OpBlock), idx(wasmbin.OpBr, 0), end,
			idx(wasmbin.OpCall, 0),
			i32(100), idx(wasmbin.OpGlobalGet, 0), op(opI32Add), op(wasmbin.OpReturn),
			end,
			// case 1: if x then h(10) else unreachable
			idx(wasmbin.OpLocalGet, 0), blockI32, i32(10), idx(wasmbin.OpCall, 1),
			op(wasmbin.OpElse), op(wasmbin.OpUnreachable), op(wasmbin.OpEnd),
			op(wasmbin.OpReturn),
			end,
			// default: x/3 + x%5 + grow(1) + size + table[0]() + (1.5/2 < 1)
			// + wrap(5) + select(1, 2, x), storing and loading through memory
			idx(wasmbin.OpLocalGet, 0), i32(3), op(opI32DivS),
			idx(wasmbin.OpLocalGet, 0), i32(5), op(opI32RemU), op(opI32Add),
			i32(1), idx(wasmbin.OpMemoryGrow, 0), op(opI32Add),
			idx(wasmbin.OpMemorySize, 0), op(opI32Add),
			i32(0), imm(wasmbin.OpCallIndirect, 2, 0), op(opI32Add),
			imm(wasmbin.OpF32Const, 0, 0, 0xc0, 0x3f), imm(wasmbin.OpF32Const, 0, 0, 0, 0x40), op(opF32Div),
			imm(wasmbin.OpF32Const, 0, 0, 0x80, 0x3f), op(opF32Lt), op(opI32Add),
			wasmbin.I64Const(5), op(opI32Wrap), op(opI32Add),
			i32(1), i32(2), idx(wasmbin.OpLocalGet, 0), op(opSelect), op(opI32Add),
			idx(wasmbin.OpGlobalSet, 1),
			i32(16), idx(wasmbin.OpGlobalGet, 1), imm(opI32Store, 2, 0),
			i32(16), imm(opI32Load, 2, 0),
			end,
		}},
	}
	m.Customs = []wasmbin.Custom{{Name: "name", Data: nameSection}}
	return m.Encode()
}

// noImportModule has no import section (usegas becomes function 0) and a
// memory but no type section, so both sections are created.
func noImportModule(t *testing.T) []byte {
	m := emptyModule(t)
	m.Types = []wasmbin.FuncType{{Results: []wasmbin.ValType{wasmbin.I32}}}
	m.Funcs = []uint32{0, 0}
	m.Tables = []wasmbin.Table{{Elem: wasmbin.FuncRef, Limits: wasmbin.Limits{Flags: 1, Min: 3, Max: 3}}}
	m.Memories = []wasmbin.Limits{{Min: 1}}
	m.Exports = []wasmbin.Export{{Name: "a", Kind: wasmbin.KindFunc, Index: 1}, {Name: "mem", Kind: wasmbin.KindMemory, Index: 0}}
	m.Elems = []wasmbin.Elem{{Offset: []wasmbin.Instr{i32(1), end}, Funcs: []uint32{1, 0}}}
	m.Code = []wasmbin.Func{
		{Code: []wasmbin.Instr{i32(7), end}},
		{Code: []wasmbin.Instr{idx(wasmbin.OpCall, 0), i32(1), imm(wasmbin.OpCallIndirect, 0, 0), op(opI32Add), end}},
	}
	m.Data = []wasmbin.Data{{Offset: []wasmbin.Instr{i32(8), end}, Init: []byte("hello")}}
	return m.Encode()
}

// opcodeModule is a single (invalid, but decodable) body with every opcode
// the reference knows, each followed by end so that each one is a segment of
// its own and the metering call before it carries its cost.
func opcodeModule(t *testing.T) []byte {
	m := emptyModule(t)
	m.Types = []wasmbin.FuncType{{}}
	m.Funcs = []uint32{0}
	var code []wasmbin.Instr
	for c := 0; c <= 0xff; c++ {
		if !gasKnown[c] {
			continue
		}
		o := wasmbin.Opcode(c)
		var in wasmbin.Instr
		switch {
		case o == wasmbin.OpBlock || o == wasmbin.OpLoop || o == wasmbin.OpIf:
			in = imm(o, 0x40)
		case o == wasmbin.OpBrTable:
			in = imm(o, 2, 0, 1, 0)
		case o == wasmbin.OpCallIndirect:
			in = imm(o, 0, 0)
		case o == wasmbin.OpBr || o == wasmbin.OpBrIf || o == wasmbin.OpCall || o >= 0x20 && o <= 0x24 || o == 0x3f || o == 0x40:
			in = imm(o, 0)
		case o >= 0x28 && o <= 0x3e:
			in = imm(o, 2, 0x88, 0x01)
		case o == wasmbin.OpI32Const:
			in = i32(-123456)
		case o == wasmbin.OpI64Const:
			in = wasmbin.I64Const(-1 << 40)
		case o == wasmbin.OpF32Const:
			in = imm(o, 1, 2, 3, 4)
		case o == wasmbin.OpF64Const:
			in = imm(o, 1, 2, 3, 4, 5, 6, 7, 8)
		default:
			in = op(o)
		}
		code = append(code, in, end)
	}
	m.Code = []wasmbin.Func{{Locals: []wasmbin.Locals{{N: 300, Type: wasmbin.I32}}, Code: code}}
	return m.Encode()
}

func TestGasMatchesReference(t *testing.T) {
	cases := []struct {
		name string
		bin  func(*testing.T) []byte
	}{
		{"rich", richModule},
		{"no-imports", noImportModule},
		{"opcodes", opcodeModule},
		{"memory-only", func(t *testing.T) []byte {
			m := emptyModule(t)
			m.Memories = []wasmbin.Limits{{Min: 1}}
			m.Customs = []wasmbin.Custom{{Name: "first", Data: []byte{1, 2}}}
			return m.Encode()
		}},
		{"types-only", func(t *testing.T) []byte {
			// No section after the type section: the reference adds the type
			// but has nowhere to put an import section.
			m := emptyModule(t)
			m.Types = []wasmbin.FuncType{{}}
			return m.Encode()
		}},
		{"custom-only", func(t *testing.T) []byte {
			m := emptyModule(t)
			m.Customs = []wasmbin.Custom{{Name: "c", Data: []byte("x")}}
			return m.Encode()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { compareRef(t, c.bin(t)) })
	}
}

// TestGasOpcodeCosts checks GasCost against the costs in the reference's
// output for opcodeModule (the byte comparison covers them too, but this
// names the opcode that differs).
func TestGasOpcodeCosts(t *testing.T) {
	orig, err := wasmbin.Decode(opcodeModule(t))
	if err != nil {
		t.Fatal(err)
	}
	want, refErr := refMeter(t, opcodeModule(t), "i64")
	if refErr != "" {
		t.Fatal(refErr)
	}
	m, err := wasmbin.Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	code, p := m.Code[0].Code, 0
	// meter returns the cost of the metering call at p, if any.
	meter := func() int64 {
		if p+1 < len(code) && code[p].Op == wasmbin.OpI64Const && code[p+1].Op == wasmbin.OpCall {
			if f, _ := code[p+1].Index(); f == 0 {
				v, _ := code[p].Int()
				p += 2
				return v - gasCallCost
			}
		}
		return 0
	}
	pairs := orig.Code[0].Code
	for k := 0; k < len(pairs); k += 2 {
		o := pairs[k].Op
		cost := meter()
		if p >= len(code) || code[p].Op != o {
			t.Fatalf("reference output out of step at opcode %v", o)
		}
		p++
		if gasEndsSegment(o) {
			if c := meter(); c != 0 {
				t.Errorf("a lone end after %v metered at %d", o, c)
			}
		}
		if p >= len(code) || code[p].Op != wasmbin.OpEnd {
			t.Fatalf("reference output out of step after opcode %v", o)
		}
		p++
		if got := GasCost(o); got != cost {
			t.Errorf("opcode %v: GasCost %d, reference %d", o, got, cost)
		}
	}
	if p != len(code) {
		t.Errorf("%d trailing instructions in the reference output", len(code)-p)
	}
}

func TestGasAOS(t *testing.T) {
	bin := interop.WaoModule(t, "aos2_0_4_32.wasm")
	want, refErr := refMeter(t, bin, "i32")
	if refErr != "" {
		t.Fatalf("reference failed: %s", refErr)
	}
	got, err := ourMeter(bin, wasmbin.I32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		at := 0
		for at < len(got) && at < len(want) && got[at] == want[at] {
			at++
		}
		t.Fatalf("got %d bytes, reference %d; first difference at %#x\ngot  % x\nwant % x",
			len(got), len(want), at, window(got, at), window(want, at))
	}
}

// TestGasUnsupported checks that what the reference decoder cannot read is
// rejected before m changes.
func TestGasUnsupported(t *testing.T) {
	base := func(t *testing.T, code ...wasmbin.Instr) *wasmbin.Module {
		m := emptyModule(t)
		m.Types = []wasmbin.FuncType{{}}
		m.Funcs = []uint32{0}
		m.Memories = []wasmbin.Limits{{Min: 1}}
		m.Code = []wasmbin.Func{{Code: append(code, end)}}
		return m
	}
	cases := []struct {
		name   string
		mod    func(*testing.T) *wasmbin.Module
		refErr bool // the reference throws (otherwise it writes a broken module)
	}{
		{"memory.copy", func(t *testing.T) *wasmbin.Module {
			return base(t, i32(0), i32(0), i32(0), imm(wasmbin.Prefixed(0xfc, 10), 0, 0))
		}, true},
		{"i32.trunc_sat_f32_s", func(t *testing.T) *wasmbin.Module {
			return base(t, imm(wasmbin.OpF32Const, 0, 0, 0, 0), imm(wasmbin.Prefixed(0xfc, 0)), op(wasmbin.OpDrop))
		}, true},
		{"simd", func(t *testing.T) *wasmbin.Module {
			return base(t, imm(wasmbin.Prefixed(0xfd, 12), make([]byte, 16)...), op(wasmbin.OpDrop))
		}, true},
		{"ref.func", func(t *testing.T) *wasmbin.Module {
			return base(t, idx(wasmbin.OpRefFunc, 0), op(wasmbin.OpDrop))
		}, true},
		{"return_call", func(t *testing.T) *wasmbin.Module { return base(t, idx(wasmbin.OpReturnCall, 0)) }, true},
		{"existing usegas", func(t *testing.T) *wasmbin.Module {
			m := base(t)
			m.Imports = []wasmbin.Import{{Module: GasImportModule, Name: GasImportName, Kind: wasmbin.KindFunc}}
			return m
		}, true},
		{"multi-value", func(t *testing.T) *wasmbin.Module {
			m := base(t)
			m.Types = append(m.Types, wasmbin.FuncType{Results: []wasmbin.ValType{wasmbin.I32, wasmbin.I32}})
			return m
		}, false},
		{"passive data", func(t *testing.T) *wasmbin.Module {
			m := base(t)
			m.Data = []wasmbin.Data{{Flags: 1, Init: []byte("x")}}
			return m
		}, false},
		{"v128 local", func(t *testing.T) *wasmbin.Module {
			m := base(t)
			m.Code[0].Locals = []wasmbin.Locals{{N: 1, Type: wasmbin.V128}}
			return m
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin := c.mod(t).Encode()
			m, err := wasmbin.Decode(bin)
			if err != nil {
				t.Fatal(err)
			}
			err = AddGas(m, wasmbin.I32)
			if !errors.Is(err, ErrGasUnsupported) {
				t.Fatalf("AddGas: %v, want ErrGasUnsupported", err)
			}
			if !bytes.Equal(m.Encode(), bin) {
				t.Fatal("AddGas changed the module before failing")
			}
			if c.refErr {
				if _, refErr := refMeter(t, bin, "i32"); refErr == "" {
					t.Fatal("the reference metered it")
				} else {
					t.Logf("reference: %s", refErr)
				}
			}
		})
	}
}

// TestGasRun runs a metered module on wazero and checks the gas that
// metering.usegas receives against costs worked out by hand from the table.
func TestGasRun(t *testing.T) {
	for _, mt := range meterTypes() {
		t.Run(mt.name, func(t *testing.T) {
			bin, err := ourMeter(richModule(t), mt.vt)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			var gas int64
			vt := api.ValueTypeI32
			if mt.vt == wasmbin.I64 {
				vt = api.ValueTypeI64
			}
			if _, err := rt.NewHostModuleBuilder(GasImportModule).NewFunctionBuilder().
				WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
					if mt.vt == wasmbin.I32 {
						gas += int64(int32(s[0]))
					} else {
						gas += int64(s[0])
					}
				}), []api.ValueType{vt}, nil).Export(GasImportName).Instantiate(ctx); err != nil {
				t.Fatal(err)
			}
			env := rt.NewHostModuleBuilder("env")
			env.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), nil, nil).Export("f")
			env.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
				s[0] = uint64(uint32(s[0]) * 2)
			}), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export("h")
			if _, err := env.Instantiate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := rt.InstantiateWithConfig(ctx, providerModule(t), wazero.NewModuleConfig().WithName("js")); err != nil {
				t.Fatal(err)
			}
			mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("metered"))
			if err != nil {
				t.Fatalf("instantiate metered module: %v", err)
			}
			// The start function ran: nop (1) + 91.
			if gas != 92 {
				t.Errorf("start: gas %d, want 92", gas)
			}
			call := func(name string, arg uint64) (uint64, int64) {
				t.Helper()
				gas = 0
				var args []uint64
				if name != "one" {
					args = []uint64{arg}
				}
				r, err := mod.ExportedFunction(name).Call(ctx, args...)
				if err != nil {
					t.Fatalf("%s(%d): %v", name, arg, err)
				}
				return r[0], gas
			}
			// one: [i32.const 1; end] = 1 + 91.
			if r, g := call("one", 0); r != 1 || g != 92 {
				t.Errorf("one() = %d, gas %d; want 1, 92", r, g)
			}
			// sum(n): [loop] 1+91; per iteration the body up to br_if
			// (120+90+45+120+120+1+45+120+90 = 751, +91) and one()'s 92;
			// the loop's end costs 0 and is not metered; [local.get; end]
			// 120+91.
			for _, n := range []uint64{1, 5, 100} {
				want := int64(92 + 934*n + 211)
				if r, g := call("sum", n); r != n || g != want {
					t.Errorf("sum(%d) = %d, gas %d; want %d, %d", n, r, g, n, want)
				}
			}
			// flow(0): [block] 1 — blocks do not end segments — [block]
			// [block local.get br_table] 1+1+1+120+120 = 243+91;
			// case 0 after br_table lands on the first end, which alone is
			// a segment of cost 0; [block br] 1+90 = 91+91; [end] 0;
			// [call env.f, i32.const, global.get, add, return]
			// 90+1+120+45+90 = 346+91.
			if r, g := call("flow", 0); r != 142 || g != 243+91+91+91+346+91 {
				t.Errorf("flow(0) = %d, gas %d; want 142, %d", r, g, 243+91+91+91+346+91)
			}
			// flow(1): 334 as above, [end] of the middle block 0,
			// [local.get, if] 120+1+91, [i32.const, call h, else]
			// 1+90+90+91, [end] 0, [return] 90+91.
			if r, g := call("flow", 1); r != 20 || g != 334+212+272+181 {
				t.Errorf("flow(1) = %d, gas %d; want 20, %d", r, g, 334+212+272+181)
			}
			// flow(7) reaches the default case, with divisions, grow and
			// call_indirect; its gas is whatever the instruction costs add
			// up to.
			want := int64(334) + 0 + 0 + // the three block ends
				(120 + 1 + 36000 + 120 + 1 + 36000 + 45 + 1 + 10000 + 91) + // … memory.grow
				(45 + 100 + 45 + 1 + 10000 + 45 + 1 + 1 + 0 + 1 + 0 + 45 + 1 + 0 + 45 +
					1 + 1 + 120 + 120 + 45 + 120 + 1 + 120 + 120 + 1 + 120 + 0 + 91) + // … end
				92 // one() through the table
			if _, g := call("flow", 7); g != want {
				t.Errorf("flow(7): gas %d, want %d", g, want)
			}
		})
	}
}

// providerModule exports the memory "mem" (1–4 pages) and the immutable i32
// global "g" = 42 that richModule imports from "js".
func providerModule(t *testing.T) []byte {
	m := emptyModule(t)
	m.Memories = []wasmbin.Limits{{Flags: 1, Min: 1, Max: 4}}
	m.Globals = []wasmbin.Global{{Type: wasmbin.GlobalType{Type: wasmbin.I32}, Init: []wasmbin.Instr{i32(42), end}}}
	m.Exports = []wasmbin.Export{{Name: "mem", Kind: wasmbin.KindMemory}, {Name: "g", Kind: wasmbin.KindGlobal}}
	return m.Encode()
}
