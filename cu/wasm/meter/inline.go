package meter

import (
	"fmt"
	"math"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
)

// Names of the globals InlineGas exports.
const (
	// GasUsedExport is the mutable i64 global counting the gas used: the
	// reference's gas.used. The host zeroes it before each handle call and
	// reads it after.
	GasUsedExport = "aonode_gas_used"
	// GasLimitExport is the mutable i64 global holding the limit: the host
	// sets it to the process's Compute-Limit.
	GasLimitExport = "aonode_gas_limit"
)

// InlineGas replaces every call of the metering.usegas import in m (as
// AddGas leaves them) by the same accounting done in wasm:
//
//	used += n; if used > limit { unreachable }
//
// with used and limit in the exported globals GasUsedExport and
// GasLimitExport. The counts and the point of failure are exactly those of
// the host usegas (the reference's gas.use), but no call leaves wasm: a host
// call per metered segment made metered modules about 60 times slower than
// unmetered ones. The trap is an ordinary `unreachable`; the host tells it
// from others by finding used > limit, which cannot be otherwise because
// each usegas traps as soon as used exceeds the limit.
//
// The import itself stays, unused, so every function index is unchanged.
// A wasm32 meter's i32 amount is sign-extended, as the reference's JS glue
// reads it as a number. m must import metering.usegas.
func InlineGas(m *wasmbin.Module) error {
	usegas, typ, found := uint32(0), wasmbin.FuncType{}, false
	var fn uint32
	for _, im := range m.Imports {
		if im.Kind != wasmbin.KindFunc {
			continue
		}
		if im.Module == GasImportModule && im.Name == GasImportName {
			usegas, found = fn, true
			if int(im.Type) >= len(m.Types) {
				return fmt.Errorf("meter: inline gas: usegas has unknown type %d", im.Type)
			}
			typ = m.Types[im.Type]
		}
		fn++
	}
	if !found {
		return fmt.Errorf("meter: inline gas: module does not import %s.%s", GasImportModule, GasImportName)
	}
	if len(typ.Params) != 1 || len(typ.Results) != 0 || typ.Params[0] != wasmbin.I32 && typ.Params[0] != wasmbin.I64 {
		return fmt.Errorf("meter: inline gas: %s.%s is not (param i32|i64)", GasImportModule, GasImportName)
	}
	for _, e := range m.Exports {
		if e.Name == GasUsedExport || e.Name == GasLimitExport {
			return fmt.Errorf("meter: inline gas: module already exports %q", e.Name)
		}
	}
	global := func(name string, init int64) uint32 {
		g := m.AddGlobal(wasmbin.Global{
			Type: wasmbin.GlobalType{Type: wasmbin.I64, Mutable: true},
			Init: []wasmbin.Instr{wasmbin.I64Const(init), wasmbin.Op(wasmbin.OpEnd)},
		})
		m.Exports = append(m.Exports, wasmbin.Export{Name: name, Kind: wasmbin.KindGlobal, Index: g})
		return g
	}
	// Until the host sets a limit (a start function runs before it can),
	// there is none.
	used, limit := global(GasUsedExport, 0), global(GasLimitExport, math.MaxInt64)
	wide := typ.Params[0] == wasmbin.I64
	for i := range m.Code {
		m.Code[i].Code = inlineGasFunc(m.Code[i].Code, usegas, used, limit, wide)
	}
	return nil
}

func inlineGasFunc(code []wasmbin.Instr, usegas, used, limit uint32, wide bool) []wasmbin.Instr {
	var out []wasmbin.Instr
	for i, in := range code {
		if in.Op != wasmbin.OpCall {
			if out != nil {
				out = append(out, in)
			}
			continue
		}
		if idx, err := in.Index(); err != nil || idx != usegas {
			if out != nil {
				out = append(out, in)
			}
			continue
		}
		if out == nil {
			out = make([]wasmbin.Instr, 0, len(code)*2)
			out = append(out, code[:i]...)
		}
		// The amount n is on the stack. An i32 one is widened; AddGas always
		// pushes it with a constant, which then becomes an i64.const.
		if !wide {
			if c, ok := lastI32Const(out); ok {
				out[len(out)-1] = wasmbin.I64Const(int64(c))
			} else {
				out = append(out, wasmbin.Op(wasmbin.OpI64ExtendS32))
			}
		}
		out = append(out,
			wasmbin.OpIndex(wasmbin.OpGlobalGet, used), wasmbin.Op(wasmbin.OpI64Add), // n + used
			wasmbin.OpIndex(wasmbin.OpGlobalSet, used),
			wasmbin.OpIndex(wasmbin.OpGlobalGet, used),
			wasmbin.OpIndex(wasmbin.OpGlobalGet, limit),
			wasmbin.Op(wasmbin.OpI64GtS),
			wasmbin.BlockVoid(wasmbin.OpIf), wasmbin.Op(wasmbin.OpUnreachable), wasmbin.Op(wasmbin.OpEnd),
		)
	}
	if out == nil {
		return code
	}
	return out
}

func lastI32Const(code []wasmbin.Instr) (int32, bool) {
	if len(code) == 0 || code[len(code)-1].Op != wasmbin.OpI32Const {
		return 0, false
	}
	c, err := code[len(code)-1].Int()
	return int32(c), err == nil
}
