// Package lower64 rewrites a memory64 WebAssembly module into an equivalent
// memory32 one, so that wazero (which has no memory64) can run the wasm64
// aos builds (runtime.md §11.2, "Option A").
//
// Only the memory's index type changes. Pointers stay i64 everywhere else
// (locals, globals, function signatures, the data in memory), so the
// import/export ABI is still the wasm64 one and a memory image is laid out
// exactly as under a native memory64 engine. What changes:
//
//   - memory limits lose the 64-bit flag; a declared minimum over 4 GiB is
//     refused, a larger maximum is clamped to 4 GiB (65536 pages);
//   - active data segment offsets become i32.const;
//   - every load, store, SIMD and atomic memory access gets its i64 address
//     wrapped with i32.wrap_i64 (operands above the address are parked in
//     scratch locals when they are not trivially re-computable);
//   - memory.size results are zero-extended to i64, memory.grow operands
//     wrapped (a delta of 2^32 pages or more fails with -1) and results
//     sign-extended (see growSeq);
//   - memory.copy, memory.fill and memory.init operands are wrapped with a
//     check that traps on an i64 value of 2^32 or more, which is exactly what
//     the memory64 instruction does when memory is smaller than 4 GiB.
//
// Precision: a load or store whose i64 address is 2^32 or more traps under
// memory64; here the address is wrapped, so it reads or writes the wrapped
// location instead (binaryen's --memory64-lowering does the same). Only a
// program that already faults can tell; checking every access would cost a
// compare and branch on each of the ~20,000 accesses in aos's hot code.
package lower64

import (
	"errors"
	"fmt"
	"math"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
)

// MaxPages is the largest 32-bit memory: 65536 pages of 64 KiB, 4 GiB.
const MaxPages = 65536

// ErrNotMemory64 is returned by Lower for a module without a 64-bit memory.
var ErrNotMemory64 = errors.New("lower64: module has no memory64 memory")

// Opcodes the rewrite emits or inspects.
const (
	opI32WrapI64    wasmbin.Opcode = 0xA7
	opI64ExtendI32S wasmbin.Opcode = 0xAC
	opI64ExtendI32U wasmbin.Opcode = 0xAD
	opI64GtU        wasmbin.Opcode = 0x56
)

var (
	opV128Const  = wasmbin.Prefixed(wasmbin.PrefixFD, 12)
	opMemoryInit = wasmbin.Prefixed(wasmbin.PrefixFC, 8)
	opMemoryCopy = wasmbin.Prefixed(wasmbin.PrefixFC, 10)
	opMemoryFill = wasmbin.Prefixed(wasmbin.PrefixFC, 11)
)

// Lower rewrites m in place from memory64 to memory32. It fails, leaving m
// in an unspecified state, on a module it cannot lower exactly: more than
// one memory, a 64-bit table, a minimum over 4 GiB, a data segment offset
// that is not a constant, or a memory instruction it does not know.
func Lower(m *wasmbin.Module) error {
	var mems []*wasmbin.Limits
	for i := range m.Imports {
		if m.Imports[i].Kind == wasmbin.KindMemory {
			mems = append(mems, &m.Imports[i].Memory)
		}
	}
	for i := range m.Memories {
		mems = append(mems, &m.Memories[i])
	}
	if len(mems) != 1 {
		return fmt.Errorf("lower64: %d memories; only single-memory modules are supported", len(mems))
	}
	if !mems[0].Is64() {
		return ErrNotMemory64
	}
	if err := lowerLimits(mems[0]); err != nil {
		return err
	}
	for i, t := range m.Tables {
		if t.Limits.Is64() {
			return fmt.Errorf("lower64: table %d is a 64-bit table", i)
		}
	}
	for i := range m.Data {
		if err := lowerDataOffset(&m.Data[i]); err != nil {
			return fmt.Errorf("lower64: data segment %d: %w", i, err)
		}
	}
	nimp := m.ImportedFuncs()
	for i := range m.Code {
		ft, err := m.FuncType(nimp + uint32(i))
		if err != nil {
			return fmt.Errorf("lower64: function %d: %w", nimp+uint32(i), err)
		}
		if err := lowerFunc(&m.Code[i], uint32(len(ft.Params))); err != nil {
			return fmt.Errorf("lower64: function %d: %w", nimp+uint32(i), err)
		}
	}
	return nil
}

func lowerLimits(l *wasmbin.Limits) error {
	if l.Min > MaxPages {
		return fmt.Errorf("lower64: memory declares a minimum of %d pages (%d bytes), over the 4 GiB a 32-bit memory can hold",
			l.Min, l.Min*65536)
	}
	if l.HasMax() && l.Max > MaxPages {
		l.Max = MaxPages
	}
	l.Flags &^= 4
	return nil
}

func lowerDataOffset(d *wasmbin.Data) error {
	if d.Flags == 1 { // passive
		return nil
	}
	if len(d.Offset) != 2 || d.Offset[0].Op != wasmbin.OpI64Const || d.Offset[1].Op != wasmbin.OpEnd {
		return errors.New("offset is not a single i64.const")
	}
	v, err := d.Offset[0].Int()
	if err != nil {
		return err
	}
	if uint64(v) > math.MaxUint32 {
		return fmt.Errorf("offset %#x is beyond 4 GiB", uint64(v))
	}
	d.Offset = []wasmbin.Instr{wasmbin.I32Const(int32(uint32(v))), wasmbin.Op(wasmbin.OpEnd)}
	return nil
}

// fn holds the scratch locals added to one function body.
type fn struct {
	next    uint32                       // index of the next new local
	scratch map[wasmbin.ValType][]uint32 // by type, in allocation order
	added   []wasmbin.ValType
}

// local returns the k-th scratch local of type t, adding it if needed.
// Scratch locals are used only inside one lowered instruction's sequence,
// so every instruction can reuse them.
func (f *fn) local(t wasmbin.ValType, k int) uint32 {
	for len(f.scratch[t]) <= k {
		f.scratch[t] = append(f.scratch[t], f.next)
		f.added = append(f.added, t)
		f.next++
	}
	return f.scratch[t][k]
}

func lowerFunc(body *wasmbin.Func, nparams uint32) error {
	f := &fn{next: nparams, scratch: map[wasmbin.ValType][]uint32{}}
	for _, l := range body.Locals {
		f.next += l.N
	}
	code := body.Code
	out := make([]wasmbin.Instr, 0, len(code)+len(code)/4)
	op := wasmbin.Op
	get := func(i uint32) wasmbin.Instr { return wasmbin.OpIndex(wasmbin.OpLocalGet, i) }
	set := func(i uint32) wasmbin.Instr { return wasmbin.OpIndex(wasmbin.OpLocalSet, i) }
	// wrapChecked turns the i64 on top of the stack into an i32, trapping
	// when it does not fit.
	wrapChecked := func() {
		t := f.local(wasmbin.I64, 0)
		out = append(out,
			wasmbin.OpIndex(wasmbin.OpLocalTee, t), wasmbin.I64Const(math.MaxUint32), op(opI64GtU),
			wasmbin.BlockVoid(wasmbin.OpIf), op(wasmbin.OpUnreachable), op(wasmbin.OpEnd),
			get(t), op(opI32WrapI64))
	}
	for at, in := range code {
		switch {
		case in.Op == wasmbin.OpMemorySize:
			// The page count of a memory under 4 GiB fits in 17 bits.
			out = append(out, in, op(opI64ExtendI32U))
		case in.Op == wasmbin.OpMemoryGrow:
			out = growSeq(out, in, f.local(wasmbin.I64, 0))
		case in.Op == opMemoryInit: // [dst i64, src i32, n i32]
			n, s := f.local(wasmbin.I32, 0), f.local(wasmbin.I32, 1)
			out = append(out, set(n), set(s))
			wrapChecked()
			out = append(out, get(s), get(n), in)
		case in.Op == opMemoryCopy: // [dst i64, src i64, n i64]
			n, s := f.local(wasmbin.I32, 0), f.local(wasmbin.I32, 1)
			wrapChecked()
			out = append(out, set(n))
			wrapChecked()
			out = append(out, set(s))
			wrapChecked()
			out = append(out, get(s), get(n), in)
		case in.Op == opMemoryFill: // [dst i64, value i32, n i64]
			n, v := f.local(wasmbin.I32, 0), f.local(wasmbin.I32, 1)
			wrapChecked()
			out = append(out, set(n), set(v))
			wrapChecked()
			out = append(out, get(v), get(n), in)
		case in.HasMemArg():
			above, ok := memAccess(in.Op)
			if !ok {
				return fmt.Errorf("instruction %d: memory instruction %v is not known to the lowering", at, in.Op)
			}
			ma, err := in.MemArg()
			if err != nil {
				return fmt.Errorf("instruction %d (%v): %w", at, in.Op, err)
			}
			if ma.Align&0x40 != 0 && ma.Memory != 0 {
				return fmt.Errorf("instruction %d (%v): memory index %d", at, in.Op, ma.Memory)
			}
			if ma.Offset > math.MaxUint32 {
				// The effective address is beyond 4 GiB, so the access traps
				// whatever the address: say so directly (a 32-bit memarg
				// could not encode the offset anyway).
				out = append(out, op(wasmbin.OpUnreachable))
				continue
			}
			if in, err = shortMemArg(in); err != nil {
				return fmt.Errorf("instruction %d (%v): %w", at, in.Op, err)
			}
			switch {
			case len(above) == 0:
				out = append(out, op(opI32WrapI64), in)
			case len(above) == 1 && len(out) > 0 && pure(out[len(out)-1]):
				// The value was pushed by an instruction without operands or
				// side effects: wrap the address before it.
				last := out[len(out)-1]
				out = append(out[:len(out)-1], op(opI32WrapI64), last, in)
			default:
				var locals []uint32
				count := map[wasmbin.ValType]int{}
				for j := len(above) - 1; j >= 0; j-- {
					l := f.local(above[j], count[above[j]])
					count[above[j]]++
					locals = append(locals, l)
					out = append(out, set(l))
				}
				out = append(out, op(opI32WrapI64))
				for j := len(locals) - 1; j >= 0; j-- {
					out = append(out, get(locals[j]))
				}
				out = append(out, in)
			}
		default:
			out = append(out, in)
		}
	}
	body.Code = out
	for _, t := range f.added {
		if n := len(body.Locals); n > 0 && body.Locals[n-1].Type == t {
			body.Locals[n-1].N++
		} else {
			body.Locals = append(body.Locals, wasmbin.Locals{N: 1, Type: t})
		}
	}
	return nil
}

// growSeq lowers memory.grow: [delta i64] -> [old pages i64, or -1].
//
//	local.tee $t; i64.const 0xffffffff; i64.gt_u
//	if (result i64) i64.const -1
//	else local.get $t; i32.wrap_i64; memory.grow; i64.extend_i32_s end
//
// A delta of 2^32 pages or more can never succeed, so it gives -1 without
// growing. The i32 result is an old page count (at most 65536, far below
// 2^31) or -1, and sign extension maps both exactly: -1 stays -1.
func growSeq(out []wasmbin.Instr, grow wasmbin.Instr, t uint32) []wasmbin.Instr {
	return append(out,
		wasmbin.OpIndex(wasmbin.OpLocalTee, t), wasmbin.I64Const(math.MaxUint32), wasmbin.Op(opI64GtU),
		wasmbin.Instr{Op: wasmbin.OpIf, Imm: []byte{byte(wasmbin.I64)}},
		wasmbin.I64Const(-1),
		wasmbin.Op(wasmbin.OpElse),
		wasmbin.OpIndex(wasmbin.OpLocalGet, t), wasmbin.Op(opI32WrapI64), grow, wasmbin.Op(opI64ExtendI32S),
		wasmbin.Op(wasmbin.OpEnd))
}

// pure reports an instruction that pops nothing, pushes one value and has
// no side effect, so that code placed before it sees the same stack below.
func pure(in wasmbin.Instr) bool {
	switch in.Op {
	case wasmbin.OpLocalGet, wasmbin.OpGlobalGet, wasmbin.OpI32Const, wasmbin.OpI64Const,
		wasmbin.OpF32Const, wasmbin.OpF64Const, opV128Const:
		return true
	}
	return false
}

var (
	i32 = wasmbin.I32
	i64 = wasmbin.I64
)

// memAccess returns, for an instruction with a memarg, the types of its
// operands above the address (the address is always the deepest operand).
func memAccess(op wasmbin.Opcode) ([]wasmbin.ValType, bool) {
	sub := op.Sub()
	switch op.Prefix() {
	case 0:
		switch {
		case op >= 0x28 && op <= 0x35: // loads
			return nil, true
		case op == 0x36, op == 0x3A, op == 0x3B: // i32.store, store8, store16
			return []wasmbin.ValType{i32}, true
		case op == 0x37, op >= 0x3C && op <= 0x3E: // i64.store, store8/16/32
			return []wasmbin.ValType{i64}, true
		case op == 0x38:
			return []wasmbin.ValType{wasmbin.F32}, true
		case op == 0x39:
			return []wasmbin.ValType{wasmbin.F64}, true
		}
	case wasmbin.PrefixFD:
		switch {
		case sub <= 10, sub == 92, sub == 93: // v128 loads, load_zero
			return nil, true
		case sub == 11, sub >= 84 && sub <= 91: // v128.store, load/store_lane
			return []wasmbin.ValType{wasmbin.V128}, true
		}
	case wasmbin.PrefixFE:
		// rmw and cmpxchg groups list i32, i64, i32_8, i32_16, i64_8,
		// i64_16, i64_32 in this order.
		width := func(k uint32) wasmbin.ValType {
			if k == 0 || k == 2 || k == 3 {
				return i32
			}
			return i64
		}
		switch {
		case sub == 0: // memory.atomic.notify
			return []wasmbin.ValType{i32}, true
		case sub == 1: // memory.atomic.wait32
			return []wasmbin.ValType{i32, i64}, true
		case sub == 2: // memory.atomic.wait64
			return []wasmbin.ValType{i64, i64}, true
		case sub >= 0x10 && sub <= 0x16: // atomic loads
			return nil, true
		case sub >= 0x17 && sub <= 0x1D: // atomic stores: i32, i64, i32_8, i32_16, i64_8, i64_16, i64_32
			return []wasmbin.ValType{width(sub - 0x17)}, true
		case sub >= 0x1E && sub <= 0x47: // rmw add, sub, and, or, xor, xchg
			return []wasmbin.ValType{width((sub - 0x1E) % 7)}, true
		case sub >= 0x48 && sub <= 0x4E: // cmpxchg
			t := width(sub - 0x48)
			return []wasmbin.ValType{t, t}, true
		}
	}
	return nil, false
}

// shortMemArg re-encodes a memarg whose offset LEB is longer than the five
// bytes a 32-bit offset may take (a memory64 linker pads offsets to ten).
func shortMemArg(in wasmbin.Instr) (wasmbin.Instr, error) {
	imm := in.Imm
	pos := 0
	align, n := uleb(imm)
	if n == 0 {
		return in, errors.New("bad memarg")
	}
	pos += n
	if align&0x40 != 0 {
		_, n = uleb(imm[pos:])
		if n == 0 {
			return in, errors.New("bad memarg")
		}
		pos += n
	}
	off, n := uleb(imm[pos:])
	if n == 0 {
		return in, errors.New("bad memarg")
	}
	if n <= 5 {
		return in, nil
	}
	b := append([]byte(nil), imm[:pos]...)
	b = appendULEB(b, off)
	b = append(b, imm[pos+n:]...) // lane index of load/store_lane
	in.Imm = b
	return in, nil
}

// uleb decodes an unsigned LEB128; n is 0 when it is malformed.
func uleb(b []byte) (v uint64, n int) {
	for i, c := range b {
		if i == 10 {
			return 0, 0
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
