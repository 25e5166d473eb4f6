package wasmbin

import (
	"fmt"
)

// Opcode identifies an instruction: the opcode byte for single-byte
// instructions, prefix<<16 | sub-opcode for the 0xFC (bulk memory, saturating
// truncation), 0xFD (SIMD) and 0xFE (threads) prefixed ones.
type Opcode uint32

// Prefixes of multi-byte opcodes.
const (
	PrefixFC byte = 0xFC
	PrefixFD byte = 0xFD // SIMD
	PrefixFE byte = 0xFE // threads / atomics
)

// Opcodes the rewriters in this module use by name; any other opcode is
// still decoded and encoded.
const (
	OpUnreachable  Opcode = 0x00
	OpNop          Opcode = 0x01
	OpBlock        Opcode = 0x02
	OpLoop         Opcode = 0x03
	OpIf           Opcode = 0x04
	OpElse         Opcode = 0x05
	OpEnd          Opcode = 0x0B
	OpBr           Opcode = 0x0C
	OpBrIf         Opcode = 0x0D
	OpBrTable      Opcode = 0x0E
	OpReturn       Opcode = 0x0F
	OpCall         Opcode = 0x10
	OpCallIndirect Opcode = 0x11
	OpReturnCall   Opcode = 0x12
	OpReturnCallIn Opcode = 0x13
	OpDrop         Opcode = 0x1A
	OpLocalGet     Opcode = 0x20
	OpLocalSet     Opcode = 0x21
	OpLocalTee     Opcode = 0x22
	OpGlobalGet    Opcode = 0x23
	OpGlobalSet    Opcode = 0x24
	OpMemorySize   Opcode = 0x3F
	OpMemoryGrow   Opcode = 0x40
	OpI32Const     Opcode = 0x41
	OpI64Const     Opcode = 0x42
	OpF32Const     Opcode = 0x43
	OpF64Const     Opcode = 0x44
	OpI64Eqz       Opcode = 0x50
	OpI64LtS       Opcode = 0x53
	OpI64GtS       Opcode = 0x55
	OpI64Add       Opcode = 0x7C
	OpI64Sub       Opcode = 0x7D
	OpI64ExtendS32 Opcode = 0xAC // i64.extend_i32_s
	OpRefFunc      Opcode = 0xD2
)

// Prefixed returns the opcode of sub-instruction sub under prefix.
func Prefixed(prefix byte, sub uint32) Opcode { return Opcode(prefix)<<16 | Opcode(sub) }

// Prefix returns the opcode's prefix byte, or 0 for a single-byte opcode.
func (op Opcode) Prefix() byte { return byte(op >> 16) }

// Sub returns the sub-opcode of a prefixed opcode (the opcode byte otherwise).
func (op Opcode) Sub() uint32 { return uint32(op & 0xffff) }

func (op Opcode) String() string {
	if p := op.Prefix(); p != 0 {
		return fmt.Sprintf("0x%02x 0x%02x", p, op.Sub())
	}
	return fmt.Sprintf("0x%02x", uint32(op))
}

// Instr is one instruction. Immediates are kept as the raw bytes that follow
// the opcode in the binary, because emscripten's linker pads relocatable LEBs
// (call targets, addresses) and a rewriter must reproduce untouched code
// byte for byte; use the accessors to read them.
type Instr struct {
	Op  Opcode
	Imm []byte
	// opWidth is the byte width of a prefixed instruction's sub-opcode LEB
	// when it is not minimal (0: minimal).
	opWidth uint8
}

// immediate layouts
type immKind uint8

const (
	immNone      immKind = iota
	immBlockType         // 0x40 | valtype | s33 type index
	immU32               // one index
	immU32x2             // two indices
	immBrTable           // vec(label) label
	immSelectT           // vec(valtype)
	immMemArg            // align (+ memidx) offset
	immMemArgLn          // memarg lane
	immI32               // s32
	immI64               // s64
	immF32               // 4 bytes
	immF64               // 8 bytes
	immByte              // one byte: heap type, lane, fence flags
	imm16                // 16 bytes: v128.const, i8x16.shuffle
)

var singleImm [256]int8 // immKind+1 for valid single-byte opcodes, 0 for unknown

func init() {
	set := func(k immKind, ops ...int) {
		for _, op := range ops {
			singleImm[op] = int8(k) + 1
		}
	}
	span := func(k immKind, lo, hi int) {
		for op := lo; op <= hi; op++ {
			singleImm[op] = int8(k) + 1
		}
	}
	set(immNone, 0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1)
	set(immBlockType, 0x02, 0x03, 0x04)
	set(immU32, 0x0C, 0x0D, 0x10, 0x12, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x3F, 0x40, 0xD2)
	set(immU32x2, 0x11, 0x13)
	set(immBrTable, 0x0E)
	set(immSelectT, 0x1C)
	span(immMemArg, 0x28, 0x3E)
	set(immI32, 0x41)
	set(immI64, 0x42)
	set(immF32, 0x43)
	set(immF64, 0x44)
	span(immNone, 0x45, 0xC4)
	set(immByte, 0xD0)
}

func prefixedImm(op Opcode) (immKind, bool) {
	sub := op.Sub()
	switch op.Prefix() {
	case PrefixFC:
		switch {
		case sub <= 7:
			return immNone, true
		case sub == 8: // memory.init data mem
			return immU32x2, true
		case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
			return immU32, true
		case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy
			return immU32x2, true
		}
	case PrefixFD:
		switch {
		case sub <= 11, sub == 92, sub == 93: // loads, store, load_zero
			return immMemArg, true
		case sub == 12, sub == 13: // v128.const, i8x16.shuffle
			return imm16, true
		case sub >= 21 && sub <= 34: // extract/replace lane
			return immByte, true
		case sub >= 84 && sub <= 91: // load/store lane
			return immMemArgLn, true
		case sub <= 0x113: // arithmetic, including relaxed SIMD
			return immNone, true
		}
	case PrefixFE:
		switch {
		case sub <= 2: // notify, wait32, wait64
			return immMemArg, true
		case sub == 3: // atomic.fence
			return immByte, true
		case sub >= 0x10 && sub <= 0x4E: // atomic loads, stores, rmw, cmpxchg
			return immMemArg, true
		}
	}
	return 0, false
}

// decodeInstr reads one instruction.
func decodeInstr(r *reader) (Instr, error) {
	at := r.pos
	c, err := r.byte()
	if err != nil {
		return Instr{}, err
	}
	in := Instr{Op: Opcode(c)}
	var kind immKind
	switch c {
	case PrefixFC, PrefixFD, PrefixFE:
		subAt := r.pos
		sub, err := r.u32()
		if err != nil {
			return Instr{}, err
		}
		if w := r.pos - subAt; w != lebLen(uint64(sub)) {
			in.opWidth = uint8(w)
		}
		in.Op = Prefixed(c, sub)
		k, ok := prefixedImm(in.Op)
		if !ok {
			return Instr{}, &unknownOpError{DecodeError{r.base + at, fmt.Sprintf("unknown opcode %v", in.Op)}}
		}
		kind = k
	default:
		k := singleImm[c]
		if k == 0 {
			return Instr{}, &unknownOpError{DecodeError{r.base + at, fmt.Sprintf("unknown opcode %v", in.Op)}}
		}
		kind = immKind(k - 1)
	}
	start := r.pos
	if err := skipImm(r, kind); err != nil {
		return Instr{}, err
	}
	if r.pos > start {
		in.Imm = r.b[start:r.pos:r.pos]
	}
	return in, nil
}

func skipImm(r *reader, kind immKind) error {
	var err error
	switch kind {
	case immNone:
	case immBlockType:
		var c byte
		if c, err = r.byte(); err == nil && c != 0x40 && !isValType(c) {
			r.pos--
			_, err = r.sleb(33)
		}
	case immU32:
		_, err = r.u32()
	case immU32x2:
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	case immBrTable:
		var n uint32
		if n, err = r.count(1); err == nil {
			for i := uint32(0); i <= n && err == nil; i++ {
				_, err = r.u32()
			}
		}
	case immSelectT:
		var n uint32
		if n, err = r.count(1); err == nil {
			_, err = r.bytes(uint64(n))
		}
	case immMemArg, immMemArgLn:
		var align uint32
		if align, err = r.u32(); err != nil {
			return err
		}
		if align&0x40 != 0 { // multi-memory: a memory index follows
			if _, err = r.u32(); err != nil {
				return err
			}
		}
		if _, err = r.leb(64); err != nil { // 64 bits: memory64 offsets
			return err
		}
		if kind == immMemArgLn {
			_, err = r.byte()
		}
	case immI32:
		_, err = r.sleb(32)
	case immI64:
		_, err = r.sleb(64)
	case immF32:
		_, err = r.bytes(4)
	case immF64:
		_, err = r.bytes(8)
	case immByte:
		_, err = r.byte()
	case imm16:
		_, err = r.bytes(16)
	}
	return err
}

func isValType(c byte) bool {
	switch ValType(c) {
	case I32, I64, F32, F64, V128, FuncRef, ExternRef:
		return true
	}
	return false
}

func (in Instr) appendTo(b []byte) []byte {
	if p := in.Op.Prefix(); p != 0 {
		b = append(b, p)
		b = appendLEBWidth(b, uint64(in.Op.Sub()), int(in.opWidth))
	} else {
		b = append(b, byte(in.Op))
	}
	return append(b, in.Imm...)
}

// AppendInstrs appends the binary encoding of code.
func AppendInstrs(b []byte, code []Instr) []byte {
	for _, in := range code {
		b = in.appendTo(b)
	}
	return b
}

// Op returns an instruction without immediates.
func Op(op Opcode) Instr { return Instr{Op: op} }

// OpIndex returns an instruction whose immediate is one index (call,
// local.get, global.set, br, …).
func OpIndex(op Opcode, idx uint32) Instr { return Instr{Op: op, Imm: appendLEB(nil, uint64(idx))} }

// I32Const returns i32.const v.
func I32Const(v int32) Instr { return Instr{Op: OpI32Const, Imm: appendSLEB(nil, int64(v))} }

// I64Const returns i64.const v.
func I64Const(v int64) Instr { return Instr{Op: OpI64Const, Imm: appendSLEB(nil, v)} }

// BlockVoid returns block, loop or if with the empty block type.
func BlockVoid(op Opcode) Instr { return Instr{Op: op, Imm: []byte{0x40}} }

// Index returns the first LEB128 immediate: the index of call, ref.func,
// local.*, global.*, br, br_if, or the type index of call_indirect.
func (in Instr) Index() (uint32, error) {
	r := reader{b: in.Imm}
	return r.u32()
}

// SetIndex replaces the first LEB128 immediate, keeping its byte width when
// the new value fits, so the rest of the encoding is unchanged.
func (in *Instr) SetIndex(idx uint32) error {
	r := reader{b: in.Imm}
	if _, err := r.u32(); err != nil {
		return err
	}
	imm := appendLEBWidth(nil, uint64(idx), r.pos)
	in.Imm = append(imm, in.Imm[r.pos:]...)
	return nil
}

// Int returns the value of i32.const or i64.const.
func (in Instr) Int() (int64, error) {
	r := reader{b: in.Imm}
	return r.sleb(64)
}

// MemArg is a load/store immediate.
type MemArg struct {
	Align  uint32 // log2 of the alignment, plus 0x40 when Memory is present
	Memory uint32
	Offset uint64
}

// MemArg decodes the memory immediate of a load, store, SIMD or atomic
// memory instruction.
func (in Instr) MemArg() (MemArg, error) {
	r := reader{b: in.Imm}
	var m MemArg
	var err error
	if m.Align, err = r.u32(); err != nil {
		return m, err
	}
	if m.Align&0x40 != 0 {
		if m.Memory, err = r.u32(); err != nil {
			return m, err
		}
	}
	m.Offset, err = r.leb(64)
	return m, err
}

// HasMemArg reports whether the instruction's immediates start with a memarg.
func (in Instr) HasMemArg() bool {
	k, ok := in.kind()
	return ok && (k == immMemArg || k == immMemArgLn)
}

func (in Instr) kind() (immKind, bool) {
	if in.Op.Prefix() != 0 {
		return prefixedImm(in.Op)
	}
	if in.Op > 0xff || singleImm[in.Op] == 0 {
		return 0, false
	}
	return immKind(singleImm[in.Op] - 1), true
}
