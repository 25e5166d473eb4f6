package meter

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
)

// Load-time gas metering of the *-metering Module-Formats (runtime.md §2, §9).
//
// AddGas is a port of @permaweb/wasm-metering 0.2.2 meterWASM with its
// default cost table and options, as @permaweb/ao-loader 0.0.49 applies it
// (ao-loader bundles that version; its output on aos 2.0.4 is the same as the
// npm package's). The reference decodes and re-encodes the module with
// @permaweb/wasm-json-toolkit 0.2.9, so what it meters is the result, not a
// reading of its documentation:
//
//   - The import is module "metering", name "usegas" (GasImportModule,
//     GasImportName), of a new type (param <meterType>) with no result,
//     appended at the end of the type section (never shared with an equal
//     existing type) and of the import section (after all imports, whatever
//     their kind). Its function index is the number of function imports, so
//     every defined function's index grows by one. A module that already
//     imports metering.usegas is rejected.
//   - The meter type is i32 for wasm32-unknown-emscripten-metering and i64
//     for wasm64-unknown-emscripten-draft_2024_10_16-metering (ao-loader:
//     format.startsWith("wasm32") ? "i32" : "i64"; meterWASM's own default
//     is i32 although its comment says i64).
//   - Renumbering touches only the call instruction (0x10), function exports,
//     the start function and the function lists of element segments. The
//     "name" custom section is left as it was (its function indices go stale,
//     as in the reference).
//   - Every function body is cut into segments. A segment ends after any of
//     memory.grow (grow_memory), end, br, br_table, br_if, if, else, return,
//     loop; call, block and unreachable do not end one. Before each segment
//     whose cost is not 0 goes "<meterType>.const C; call $usegas" with C the
//     segment's cost plus 91, the cost of those two instructions (const 1,
//     call 90). A segment of cost 0 (a lone end, or only unpriced
//     instructions before its terminator) gets no call.
//   - An instruction's cost is looked up by its wasm-json-toolkit name
//     without the type prefix (i32.add and f64.add are both "add" = 45;
//     f32.lt is "lt", which is not in the table). Names missing from the
//     table cost 0: end, the conversions (wrap/i64, trunc_s/f32, …), the sign
//     extensions, float div/min/max/abs/neg/sqrt/…, float lt/gt/le/ge. See
//     gasCosts for the full list.
//   - Locals and function signatures cost 0, although the table prices each
//     local at 1: the reference looks up costTable.local while the table's
//     key is "locals", and its type table prices params and results at 0.
//     (runtime.md §9.3's "each local costs 1" is what the table says, not
//     what the code does.)
//
// The reference decoder knows only the MVP plus sign extension: no 0xFC
// (bulk memory, saturating truncation), 0xFD (SIMD) or 0xFE prefixes, no
// reference types (ref.*, table.get/set, typed select), tail calls,
// multi-value, passive or declarative segments, non-0 segment flags, or
// constant expressions of more than one instruction. On an unknown opcode
// wasm2json throws ("Cannot read properties of undefined (reading
// 'split')"); the other forms it misreads into a broken module. AddGas
// returns an error matching ErrGasUnsupported for all of them, before
// changing m. aos 2.0.4 (wasm32) uses none of them.
//
// # Host side (what @permaweb/ao-loader 0.0.49 does)
//
// The emscripten4 glue (used for wasm32-unknown-emscripten-metering; the
// wasm64 glue for the wasm64 format) keeps Module.gas = {limit, used}:
//
//   - limit = the loader option computeLimit (the CU passes the process's
//     Compute-Limit) || 9e15;
//   - metering.usegas(n): used += n (wasm32: n arrives as a JS number, i.e.
//     the i32 read as signed; wasm64: used += Number(n) of the i64 BigInt),
//     then if used > limit it throws Error("out of gas!"). The check is
//     after adding, strictly greater, and happens before the segment runs;
//   - before every handle call the loader calls gas.refill() with no amount,
//     which sets used = 0, so GasUsed is per message. Gas spent while
//     instantiating (before the first handle) is discarded by that refill;
//     aos boots Lua inside the first handle, so boot gas is counted there;
//   - the result's GasUsed is gas.used after handle returns;
//   - an out-of-gas throw propagates out of handle (the loader's returned
//     function rejects with that Error), like any other trap;
//   - env.metering_gasUsed() (aos 2.0.4 imports it, result i32) returns
//     gas.used, converted by the JS→wasm i32 rule (modulo 2^32).
//
// cu/wasm already implements usegas and metering_gasUsed this way in
// host.go; wiring the -metering formats means calling AddGas on the decoded
// module (before AddFuel and before lowering memory64, so that only the
// original instructions are metered) and using the emscripten4 (or wasm64)
// format otherwise. The wasm64 format needs a usegas with an i64 parameter.
//
// Every wasm function the host calls is metered, so GasUsed matches only if
// the host calls exactly the exports the glue calls: the glue's invoke_<sig>
// imports call the exported wasm function dynCall_<sig> (which
// call_indirects, and is Asyncify-instrumented, about 12,000 gas per call),
// not the table entry directly; and the glue makes no extra calls such as
// asyncify_get_state after handle.

// Names of the import AddGas adds.
const (
	GasImportModule = "metering"
	GasImportName   = "usegas"
)

// gasCallCost is what the reference charges for its own metering statement:
// const (1) + call (90).
const gasCallCost = 91

// ErrGasUnsupported is matched (errors.Is) by AddGas errors for modules the
// reference metering cannot process.
var ErrGasUnsupported = errors.New("meter: module not supported by the reference gas metering")

type gasError struct{ msg string }

func (e *gasError) Error() string        { return "meter: gas: " + e.msg }
func (e *gasError) Is(target error) bool { return target == ErrGasUnsupported }

func unsupported(format string, args ...any) error {
	return &gasError{fmt.Sprintf(format, args...)}
}

// gasCosts is the default cost table (defaultCostTable.json "code"."code")
// indexed by opcode through wasm-json-toolkit's opcode names. Opcodes absent
// here cost 0.
var gasCosts = func() [256]int64 {
	var c [256]int64
	set := func(cost int64, ops ...int) {
		for _, op := range ops {
			c[op] = cost
		}
	}
	span := func(cost int64, lo, hi int) {
		for op := lo; op <= hi; op++ {
			c[op] = cost
		}
	}
	set(1, 0x00, 0x01, 0x02, 0x03, 0x04) // unreachable nop block loop if
	set(90, 0x05, 0x0C, 0x0D, 0x0F)      // else br br_if return
	set(120, 0x0E)                       // br_table
	set(90, 0x10)                        // call
	set(10000, 0x11)                     // call_indirect
	set(120, 0x1A, 0x1B)                 // drop select
	span(120, 0x20, 0x24)                // get_local … set_global
	span(120, 0x28, 0x3E)                // load*, store*
	set(100, 0x3F)                       // current_memory
	set(10000, 0x40)                     // grow_memory
	span(1, 0x41, 0x44)                  // const
	// i32 and i64 comparisons: eqz eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u
	span(45, 0x45, 0x5A)
	set(45, 0x5B, 0x5C, 0x61, 0x62) // f32/f64 eq ne (lt gt le ge cost 0)
	for _, base := range []int{0x67, 0x79} {
		// clz ctz popcnt add sub mul div_s div_u rem_s rem_u and or xor shl
		// shr_s shr_u rotl rotr
		costs := []int64{45, 45, 45, 45, 45, 45, 36000, 36000, 36000, 36000, 45, 45, 45, 67, 67, 67, 90, 90}
		for i, cost := range costs {
			c[base+i] = cost
		}
	}
	set(45, 0x92, 0x93, 0x94, 0xA0, 0xA1, 0xA2) // f32/f64 add sub mul
	return c
}()

// gasKnown marks the opcodes wasm-json-toolkit decodes.
var gasKnown = func() [256]bool {
	var k [256]bool
	for _, op := range []int{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x1A, 0x1B} {
		k[op] = true
	}
	for op := 0x20; op <= 0x24; op++ {
		k[op] = true
	}
	for op := 0x28; op <= 0xC4; op++ {
		k[op] = true
	}
	return k
}()

// gasEndsSegment marks the reference's branchingOps.
func gasEndsSegment(op wasmbin.Opcode) bool {
	switch op {
	case wasmbin.OpMemoryGrow, wasmbin.OpEnd, wasmbin.OpBr, wasmbin.OpBrTable, wasmbin.OpBrIf,
		wasmbin.OpIf, wasmbin.OpElse, wasmbin.OpReturn, wasmbin.OpLoop:
		return true
	}
	return false
}

// GasCost returns the reference cost of one instruction with opcode op (0
// for opcodes the table does not price).
func GasCost(op wasmbin.Opcode) int64 {
	if op > 0xff {
		return 0
	}
	return gasCosts[op]
}

// AddGas instruments m in place exactly as the reference load-time metering
// does (see the comment above): meterType is wasmbin.I32 for wasm32 modules,
// wasmbin.I64 for wasm64 ones. On error m is unchanged.
func AddGas(m *wasmbin.Module, meterType wasmbin.ValType) error {
	if meterType != wasmbin.I32 && meterType != wasmbin.I64 {
		return fmt.Errorf("meter: gas: meter type 0x%02x is not i32 or i64", byte(meterType))
	}
	if err := gasCheck(m); err != nil {
		return err
	}
	fn := m.ImportedFuncs()
	// Meter every body first (it can still fail on an oversized i32 cost).
	code := make([][]wasmbin.Instr, len(m.Code))
	for i := range m.Code {
		c, err := gasFunc(m.Code[i].Code, fn, meterType)
		if err != nil {
			return fmt.Errorf("meter: gas: function %d: %w", fn+uint32(i), err)
		}
		code[i] = c
	}
	// The reference adds the type and import sections only when it can place
	// them before a later known section.
	addType := len(m.Types) > 0 || gasLaterSection(m, wasmbin.SecType)
	addImport := len(m.Imports) > 0 || gasLaterSection(m, wasmbin.SecImport)
	if addImport && !addType {
		// Unreachable: a later section for the import is later for the type.
		return fmt.Errorf("meter: gas: internal error: import without type section")
	}
	if addType {
		m.Types = append(m.Types, wasmbin.FuncType{Params: []wasmbin.ValType{meterType}})
	}
	if addImport {
		m.Imports = append(m.Imports, wasmbin.Import{
			Module: GasImportModule, Name: GasImportName, Kind: wasmbin.KindFunc,
			Type: uint32(len(m.Types) - 1),
		})
	}
	shift := func(i uint32) uint32 {
		if i >= fn {
			return i + 1
		}
		return i
	}
	for i := range m.Exports {
		if m.Exports[i].Kind == wasmbin.KindFunc {
			m.Exports[i].Index = shift(m.Exports[i].Index)
		}
	}
	for i := range m.Elems {
		for j := range m.Elems[i].Funcs {
			m.Elems[i].Funcs[j] = shift(m.Elems[i].Funcs[j])
		}
	}
	if m.Start != nil {
		s := shift(*m.Start)
		m.Start = &s
	}
	for i := range m.Code {
		m.Code[i].Code = code[i]
	}
	return nil
}

// gasLaterSection reports whether m has a known section after id (the
// reference's createSection inserts a missing section before the first
// one). Present but empty sections are not visible through wasmbin.Module;
// they only matter for modules without code.
func gasLaterSection(m *wasmbin.Module, id byte) bool {
	switch {
	case len(m.Data) > 0, len(m.Code) > 0, m.DataCount != nil, len(m.Elems) > 0, m.Start != nil,
		len(m.Exports) > 0, len(m.Globals) > 0, len(m.Memories) > 0, len(m.Tables) > 0, len(m.Funcs) > 0:
		return true
	case id == wasmbin.SecType:
		return len(m.Imports) > 0
	}
	return false
}

// gasFunc returns the metered copy of one function body, leaving code as it
// is; fn is the usegas function index.
func gasFunc(code []wasmbin.Instr, fn uint32, meterType wasmbin.ValType) ([]wasmbin.Instr, error) {
	out := make([]wasmbin.Instr, 0, len(code)+len(code)/2)
	var seg []wasmbin.Instr // the current segment
	var cost int64
	for _, in := range code {
		if in.Op == wasmbin.OpCall {
			f, err := in.Index()
			if err != nil {
				return nil, err
			}
			if f >= fn {
				in.Imm = append([]byte(nil), in.Imm...) // do not write through to code
				if err := in.SetIndex(f + 1); err != nil {
					return nil, err
				}
			}
		}
		cost += GasCost(in.Op)
		seg = append(seg, in)
		if !gasEndsSegment(in.Op) {
			continue
		}
		if cost != 0 {
			cost += gasCallCost
			if meterType == wasmbin.I32 && cost > 1<<31-1 {
				// The reference writes the LEB anyway, and the module fails
				// to compile.
				return nil, fmt.Errorf("segment cost %d overflows i32.const", cost)
			}
			op := wasmbin.OpI32Const
			if meterType == wasmbin.I64 {
				op = wasmbin.OpI64Const
			}
			out = append(out, wasmbin.Instr{Op: op, Imm: appendSLEB(nil, cost)},
				wasmbin.OpIndex(wasmbin.OpCall, fn))
		}
		out = append(out, seg...)
		seg = seg[:0]
		cost = 0
	}
	if len(seg) != 0 {
		return nil, fmt.Errorf("body does not end with end")
	}
	return out, nil
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// gasCheck rejects what wasm-json-toolkit cannot decode or re-encode
// faithfully.
func gasCheck(m *wasmbin.Module) error {
	for _, im := range m.Imports {
		if im.Module == GasImportModule && im.Name == GasImportName {
			// The reference's message.
			return unsupported("importing metering function is not allowed")
		}
		// json2wasm writes a JavaScript string's length (UTF-16 units)
		// before its UTF-8 bytes.
		if !ascii(im.Module) || !ascii(im.Name) {
			return unsupported("import %q.%q: non-ASCII name", im.Module, im.Name)
		}
		var err error
		switch im.Kind {
		case wasmbin.KindFunc:
		case wasmbin.KindTable:
			err = gasValType(im.Table.Elem)
		case wasmbin.KindGlobal:
			err = gasValType(im.Global.Type)
		}
		if err != nil {
			return fmt.Errorf("import %q.%q: %w", im.Module, im.Name, err)
		}
	}
	for i, c := range m.Customs {
		if !ascii(c.Name) {
			return unsupported("custom section %d: non-ASCII name %q", i, c.Name)
		}
	}
	for i, t := range m.Types {
		if len(t.Results) > 1 {
			return unsupported("type %d: %d results (multi-value)", i, len(t.Results))
		}
		for _, v := range append(append([]wasmbin.ValType(nil), t.Params...), t.Results...) {
			if err := gasValType(v); err != nil {
				return fmt.Errorf("type %d: %w", i, err)
			}
		}
	}
	for i, t := range m.Tables {
		if err := gasValType(t.Elem); err != nil {
			return fmt.Errorf("table %d: %w", i, err)
		}
	}
	for i, g := range m.Globals {
		if err := gasValType(g.Type.Type); err != nil {
			return fmt.Errorf("global %d: %w", i, err)
		}
		if err := gasConstExpr(g.Init); err != nil {
			return fmt.Errorf("global %d: %w", i, err)
		}
	}
	for _, e := range m.Exports {
		if !utf8.ValidString(e.Name) {
			return unsupported("export %q: name is not UTF-8", e.Name)
		}
	}
	for i, e := range m.Elems {
		if e.Flags != 0 {
			return unsupported("element segment %d: flags %d (only MVP active segments)", i, e.Flags)
		}
		if err := gasConstExpr(e.Offset); err != nil {
			return fmt.Errorf("element segment %d: %w", i, err)
		}
	}
	for i, d := range m.Data {
		if d.Flags != 0 {
			return unsupported("data segment %d: flags %d (only MVP active segments)", i, d.Flags)
		}
		if err := gasConstExpr(d.Offset); err != nil {
			return fmt.Errorf("data segment %d: %w", i, err)
		}
	}
	fn := m.ImportedFuncs()
	for i, f := range m.Code {
		for _, l := range f.Locals {
			if err := gasValType(l.Type); err != nil {
				return fmt.Errorf("function %d: local: %w", fn+uint32(i), err)
			}
		}
		for j, in := range f.Code {
			if err := gasInstr(in); err != nil {
				return fmt.Errorf("function %d: instruction %d: %w", fn+uint32(i), j, err)
			}
		}
	}
	return nil
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// gasValType accepts the value types of wasm-json-toolkit's LANGUAGE_TYPES.
func gasValType(v wasmbin.ValType) error {
	switch v {
	case wasmbin.I32, wasmbin.I64, wasmbin.F32, wasmbin.F64, wasmbin.FuncRef:
		return nil
	}
	return unsupported("value type 0x%02x", byte(v))
}

// gasConstExpr accepts the reference's init_expr: one instruction and end.
func gasConstExpr(x []wasmbin.Instr) error {
	if len(x) != 2 || x[1].Op != wasmbin.OpEnd {
		return unsupported("constant expression of %d instructions", len(x)-1)
	}
	return gasInstr(x[0])
}

func gasInstr(in wasmbin.Instr) error {
	if in.Op > 0xff || !gasKnown[in.Op] {
		return unsupported("opcode %v", in.Op)
	}
	switch {
	case in.Op == wasmbin.OpBlock || in.Op == wasmbin.OpLoop || in.Op == wasmbin.OpIf:
		// One byte: the empty type or a value type.
		if len(in.Imm) != 1 || in.Imm[0] != 0x40 && gasValType(wasmbin.ValType(in.Imm[0])) != nil {
			return unsupported("block type % x", in.Imm)
		}
	case in.Op == wasmbin.OpCallIndirect:
		// Type index LEB, then one reserved byte.
		n := 0
		for n < len(in.Imm) && in.Imm[n]&0x80 != 0 {
			n++
		}
		if len(in.Imm) != n+2 {
			return unsupported("call_indirect immediates % x", in.Imm)
		}
	case in.Op == wasmbin.OpMemorySize || in.Op == wasmbin.OpMemoryGrow:
		if len(in.Imm) != 1 {
			return unsupported("memory index % x", in.Imm)
		}
	case in.HasMemArg():
		a, err := in.MemArg()
		if err != nil {
			return err
		}
		if a.Align&0x40 != 0 {
			return unsupported("memory index in memarg (multi-memory)")
		}
		if a.Offset >= 1<<53 {
			// bn.js toNumber throws above 53 bits.
			return unsupported("memarg offset %d", a.Offset)
		}
	}
	return nil
}
