// Package meter rewrites process modules so the host can bound their work:
// fuel checks that let the CU stop a runaway message cheaply (instead of
// wazero's close-on-context-done, which checks on every loop back-edge and
// call and makes aos 2-3x slower).
package meter

import (
	"fmt"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
)

// Names the fuel instrumentation adds to a module.
const (
	// FuelImportModule and FuelImportName name the host function
	// (param i64 fuel) (result i64) called when fuel runs out: it returns
	// the new fuel, or aborts the call (a Go host function panics).
	FuelImportModule = "aonode"
	FuelImportName   = "out_of_fuel"
	// FuelExport is the exported mutable i64 global holding the fuel, so the
	// host can set it before each call.
	FuelExport = "aonode_fuel"
)

// AddFuel instruments m in place: a mutable i64 global counts fuel down by a
// static cost at every function entry and loop header, and calls the
// FuelImportModule.FuelImportName import when it goes below zero. The cost
// of a check point is the number of instructions it covers (the function's
// instructions outside loops, or a loop's own body without nested loops), a
// cheap estimate of the work until the next check point. Every unbounded
// execution passes check points, so fuel bounds the time between host
// calls.
//
// Leaf functions (no loop, no call) get no check: they run a bounded number
// of instructions and return, so their callers' checks bound them. Their
// size is charged at each call site instead. They are the small hot helpers,
// where a check would cost the most relative to the work.
func AddFuel(m *wasmbin.Module) error {
	for _, e := range m.Exports {
		if e.Name == FuelExport {
			return fmt.Errorf("meter: module already exports %q", FuelExport)
		}
	}
	typ := m.TypeIndex(wasmbin.FuncType{Params: []wasmbin.ValType{wasmbin.I64}, Results: []wasmbin.ValType{wasmbin.I64}})
	fn, err := m.AddFuncImport(FuelImportModule, FuelImportName, typ)
	if err != nil {
		return fmt.Errorf("meter: %w", err)
	}
	g := m.AddGlobal(wasmbin.Global{
		Type: wasmbin.GlobalType{Type: wasmbin.I64, Mutable: true},
		Init: []wasmbin.Instr{wasmbin.I64Const(0), wasmbin.Op(wasmbin.OpEnd)},
	})
	m.Exports = append(m.Exports, wasmbin.Export{Name: FuelExport, Kind: wasmbin.KindGlobal, Index: g})
	imported := m.ImportedFuncs()
	leaf := make([]int64, len(m.Code)) // instruction count of a leaf, 0 if not one
	for i := range m.Code {
		leaf[i] = leafSize(m.Code[i].Code)
	}
	leafCost := func(in wasmbin.Instr) int64 {
		if in.Op != wasmbin.OpCall {
			return 0
		}
		idx, err := in.Index()
		if err != nil || idx < imported || idx-imported >= uint32(len(leaf)) {
			return 0
		}
		return leaf[idx-imported]
	}
	for i := range m.Code {
		if leaf[i] == 0 {
			m.Code[i].Code = fuelFunc(m.Code[i].Code, fn, g, leafCost)
		}
	}
	return nil
}

// leafSize returns the number of instructions of a function body with no
// loop and no call, or 0.
func leafSize(code []wasmbin.Instr) int64 {
	for _, in := range code {
		switch in.Op {
		case wasmbin.OpLoop, wasmbin.OpCall, wasmbin.OpCallIndirect, wasmbin.OpReturnCall, wasmbin.OpReturnCallIn:
			return 0
		}
	}
	return int64(len(code))
}

// fuelCheck is the sequence inserted at a check point:
//
//	global.get $fuel; i64.const cost; i64.sub; global.set $fuel
//	global.get $fuel; i64.const 0; i64.lt_s
//	if; global.get $fuel; call $out_of_fuel; global.set $fuel; end
func fuelCheck(dst []wasmbin.Instr, cost int64, fn, g uint32) []wasmbin.Instr {
	get := wasmbin.OpIndex(wasmbin.OpGlobalGet, g)
	set := wasmbin.OpIndex(wasmbin.OpGlobalSet, g)
	return append(dst,
		get, wasmbin.I64Const(cost), wasmbin.Op(wasmbin.OpI64Sub), set,
		get, wasmbin.I64Const(0), wasmbin.Op(wasmbin.OpI64LtS),
		wasmbin.BlockVoid(wasmbin.OpIf), get, wasmbin.OpIndex(wasmbin.OpCall, fn), set, wasmbin.Op(wasmbin.OpEnd),
	)
}

const fuelCheckLen = 12

func fuelFunc(code []wasmbin.Instr, fn, g uint32, extra func(wasmbin.Instr) int64) []wasmbin.Instr {
	// costs[0] is the function's, costs[k] the k-th loop's.
	costs := []int64{0}
	var stack []int // per open block: its cost counter (loops open a new one)
	cur := 0
	for _, in := range code {
		costs[cur] += 1 + extra(in)
		switch in.Op {
		case wasmbin.OpBlock, wasmbin.OpIf:
			stack = append(stack, cur)
		case wasmbin.OpLoop:
			stack = append(stack, cur)
			costs = append(costs, 0)
			cur = len(costs) - 1
		case wasmbin.OpEnd:
			if len(stack) > 0 {
				cur = stack[len(stack)-1]
				stack = stack[:len(stack)-1]
			}
		}
	}
	out := make([]wasmbin.Instr, 0, len(code)+fuelCheckLen*len(costs))
	out = fuelCheck(out, costs[0], fn, g)
	loop := 0
	for _, in := range code {
		out = append(out, in)
		if in.Op == wasmbin.OpLoop {
			loop++
			out = fuelCheck(out, costs[loop], fn, g)
		}
	}
	return out
}
