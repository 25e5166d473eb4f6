// Package wasmbin decodes and encodes WebAssembly binaries so that the CU can
// rewrite process modules before handing them to wazero: fuel checks for
// cheap deadlines, load-time gas metering (the -metering Module-Formats) and,
// later, lowering memory64 to memory32 (runtime.md §9, §11).
//
// Decode∘Encode is the identity: function bodies are instruction lists whose
// immediates keep their original bytes, and every section remembers its
// original encoding, which Encode reuses while the section's content is
// unchanged. emscripten's linker pads LEBs, so re-encoding canonically would
// change untouched code.
//
// Supported: the MVP plus sign extension, saturating truncation, bulk memory,
// reference types, multi-value, tail calls, SIMD (0xFD), threads (0xFE) and
// memory64 limits and offsets. Not supported: exception handling, GC and
// typed function references (their opcodes and section forms fail to decode
// with an error carrying the offset).
package wasmbin

import (
	"bytes"
	"fmt"
)

// ValType is a value type byte.
type ValType byte

// Value types.
const (
	I32       ValType = 0x7F
	I64       ValType = 0x7E
	F32       ValType = 0x7D
	F64       ValType = 0x7C
	V128      ValType = 0x7B
	FuncRef   ValType = 0x70
	ExternRef ValType = 0x6F
)

// Section ids.
const (
	SecCustom    byte = 0
	SecType      byte = 1
	SecImport    byte = 2
	SecFunction  byte = 3
	SecTable     byte = 4
	SecMemory    byte = 5
	SecGlobal    byte = 6
	SecExport    byte = 7
	SecStart     byte = 8
	SecElement   byte = 9
	SecCode      byte = 10
	SecData      byte = 11
	SecDataCount byte = 12
)

// sectionOrder is the required order of the non-custom sections.
var sectionOrder = []byte{SecType, SecImport, SecFunction, SecTable, SecMemory, SecGlobal,
	SecExport, SecStart, SecElement, SecDataCount, SecCode, SecData}

var sectionRank = func() [13]int {
	var r [13]int
	for i, id := range sectionOrder {
		r[id] = i + 1
	}
	return r
}()

// FuncType is a function signature.
type FuncType struct {
	Params, Results []ValType
}

// Equal reports whether two signatures are the same.
func (t FuncType) Equal(u FuncType) bool {
	return bytes.Equal(valBytes(t.Params), valBytes(u.Params)) && bytes.Equal(valBytes(t.Results), valBytes(u.Results))
}

func valBytes(v []ValType) []byte {
	b := make([]byte, len(v))
	for i, t := range v {
		b[i] = byte(t)
	}
	return b
}

// Limits are table or memory limits. Flags is the binary's flag byte: bit 0
// has-max, bit 1 shared (threads), bit 2 64-bit (memory64).
type Limits struct {
	Flags    byte
	Min, Max uint64
}

// HasMax reports whether a maximum is present.
func (l Limits) HasMax() bool { return l.Flags&1 != 0 }

// Is64 reports a memory64 (or table64) limit.
func (l Limits) Is64() bool { return l.Flags&4 != 0 }

// Table is a table type.
type Table struct {
	Elem   ValType
	Limits Limits
}

// GlobalType is a global's value type and mutability.
type GlobalType struct {
	Type    ValType
	Mutable bool
}

// External kinds of imports and exports.
const (
	KindFunc   byte = 0
	KindTable  byte = 1
	KindMemory byte = 2
	KindGlobal byte = 3
)

// Import is one import; the field matching Kind is set.
type Import struct {
	Module, Name string
	Kind         byte
	Type         uint32 // KindFunc: type index
	Table        Table
	Memory       Limits
	Global       GlobalType
}

// Global is a module-defined global.
type Global struct {
	Type GlobalType
	Init []Instr // constant expression including its final end
}

// Export is one export.
type Export struct {
	Name  string
	Kind  byte
	Index uint32
}

// Elem is an element segment; Flags (0–7) is the binary's segment kind.
// Funcs holds the function indices of flags 0–3, Exprs the expressions of
// flags 4–7.
type Elem struct {
	Flags  uint32
	Table  uint32  // flags 2, 6
	Offset []Instr // active segments (flags 0, 2, 4, 6)
	Kind   byte    // elemkind (flags 1–3) or reftype (flags 5–7)
	Funcs  []uint32
	Exprs  [][]Instr
}

// Data is a data segment; Flags 0 active in memory 0, 1 passive, 2 active
// in Memory.
type Data struct {
	Flags  uint32
	Memory uint32
	Offset []Instr
	Init   []byte
}

// Locals is a run of N locals of one type in a function body.
type Locals struct {
	N    uint32
	Type ValType
}

// Func is a function body: local declarations and the instructions,
// including the final end.
type Func struct {
	Locals []Locals
	Code   []Instr
}

// Custom is a custom section.
type Custom struct {
	Name string
	Data []byte
	// after is the rank (sectionRank) of the known section it followed;
	// sections added by a rewriter (0) are written first.
	after int
}

// Module is a decoded module. Index spaces are as in the binary: imported
// functions (and globals, tables, memories) come first.
type Module struct {
	Types     []FuncType
	Imports   []Import
	Funcs     []uint32 // type index of each defined function
	Tables    []Table
	Memories  []Limits
	Globals   []Global
	Exports   []Export
	Start     *uint32
	Elems     []Elem
	DataCount *uint32
	Code      []Func
	Data      []Data
	Customs   []Custom

	version [4]byte
	// present marks the known sections the binary had (an empty section is
	// still written back).
	present [13]bool
	orig    [13]original
	// customOrig holds the original encodings of the custom sections by index.
	customOrig []original
}

// original is how a section was encoded: the size LEB width and, when the
// canonical encoding of its decoded content differs from its bytes, both, so
// Encode can tell whether the content changed.
type original struct {
	sizeWidth int
	raw       []byte
	canon     []byte // nil: raw is canonical
}

func (o *original) emit(b []byte, id byte, cur []byte) []byte {
	b = append(b, id)
	if o.raw != nil && (bytes.Equal(cur, o.canon) || o.canon == nil && bytes.Equal(cur, o.raw)) {
		cur = o.raw
		b = appendLEBWidth(b, uint64(len(cur)), o.sizeWidth)
	} else {
		b = appendLEB(b, uint64(len(cur)))
	}
	return append(b, cur...)
}

// ImportedFuncs returns the number of imported functions, which is the
// index of the first defined function.
func (m *Module) ImportedFuncs() uint32 { return m.countImports(KindFunc) }

// ImportedGlobals returns the number of imported globals.
func (m *Module) ImportedGlobals() uint32 { return m.countImports(KindGlobal) }

func (m *Module) countImports(kind byte) uint32 {
	n := uint32(0)
	for _, im := range m.Imports {
		if im.Kind == kind {
			n++
		}
	}
	return n
}

// FuncType returns the signature of function idx (imported or defined).
func (m *Module) FuncType(idx uint32) (FuncType, error) {
	var ti uint32
	n := m.ImportedFuncs()
	if idx < n {
		for _, im := range m.Imports {
			if im.Kind == KindFunc {
				if idx == 0 {
					ti = im.Type
					break
				}
				idx--
			}
		}
	} else if idx-n < uint32(len(m.Funcs)) {
		ti = m.Funcs[idx-n]
	} else {
		return FuncType{}, fmt.Errorf("wasmbin: function %d out of range", idx)
	}
	if ti >= uint32(len(m.Types)) {
		return FuncType{}, fmt.Errorf("wasmbin: type %d out of range", ti)
	}
	return m.Types[ti], nil
}

// TypeIndex returns the index of type t, adding it if absent.
func (m *Module) TypeIndex(t FuncType) uint32 {
	for i, u := range m.Types {
		if u.Equal(t) {
			return uint32(i)
		}
	}
	m.Types = append(m.Types, t)
	return uint32(len(m.Types) - 1)
}

// Custom returns the first custom section named name, or nil.
func (m *Module) Custom(name string) *Custom {
	for i := range m.Customs {
		if m.Customs[i].Name == name {
			return &m.Customs[i]
		}
	}
	return nil
}

var magic = []byte("\x00asm")

// Decode parses a binary module. The returned module refers to bin (raw
// immediates, custom and data bytes): do not modify bin while it is in use.
func Decode(bin []byte) (*Module, error) {
	r := &reader{b: bin}
	if len(bin) < 8 || !bytes.Equal(bin[:4], magic) {
		return nil, r.fail(0, "not a WebAssembly binary")
	}
	m := &Module{}
	copy(m.version[:], bin[4:8])
	if m.version != [4]byte{1, 0, 0, 0} {
		return nil, r.fail(4, "unsupported version % x", bin[4:8])
	}
	r.pos = 8
	rank := 0
	for !r.eof() {
		at := r.pos
		id, _ := r.byte()
		sizeAt := r.pos
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		width := r.pos - sizeAt
		payload, err := r.bytes(uint64(size))
		if err != nil {
			return nil, err
		}
		sr := &reader{b: payload, base: r.pos - len(payload)}
		if id == SecCustom {
			name, err := sr.name()
			if err != nil {
				return nil, fmt.Errorf("custom section: %w", err)
			}
			m.Customs = append(m.Customs, Custom{Name: name, Data: payload[sr.pos:], after: rank})
			o := original{sizeWidth: width, raw: payload}
			if c := appendName(nil, name); !bytes.Equal(c, payload[:sr.pos]) {
				o.canon = append(c, payload[sr.pos:]...)
			}
			m.customOrig = append(m.customOrig, o)
			continue
		}
		if int(id) >= len(sectionRank) || sectionRank[id] == 0 {
			return nil, r.fail(at, "unknown section id %d", id)
		}
		if sectionRank[id] <= rank {
			return nil, r.fail(at, "section %d out of order or repeated", id)
		}
		rank = sectionRank[id]
		if err := m.decodeSection(id, sr); err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		if !sr.eof() {
			return nil, sr.fail(sr.pos, "%d trailing bytes in section %d", len(payload)-sr.pos, id)
		}
		m.present[id] = true
		o := original{sizeWidth: width, raw: payload}
		if c := m.encodeSection(nil, id); !bytes.Equal(c, payload) {
			o.canon = c
		}
		m.orig[id] = o
	}
	if len(m.Funcs) != len(m.Code) {
		return nil, r.fail(len(bin), "%d functions declared but %d bodies", len(m.Funcs), len(m.Code))
	}
	return m, nil
}

// Encode writes the module. For an unmodified module the result equals the
// decoded binary; changed sections are written canonically.
func (m *Module) Encode() []byte {
	b := append(append([]byte(nil), magic...), m.version[:]...)
	emitCustoms := func(rank int) {
		for i := range m.Customs {
			c := &m.Customs[i]
			if c.after != rank {
				continue
			}
			cur := append(appendName(nil, c.Name), c.Data...)
			o := original{}
			if i < len(m.customOrig) {
				o = m.customOrig[i]
			}
			b = o.emit(b, SecCustom, cur)
		}
	}
	emitCustoms(0)
	for _, id := range sectionOrder {
		if id == SecStart && m.Start == nil || id == SecDataCount && m.DataCount == nil {
			// nothing to write
		} else if m.present[id] || m.hasContent(id) {
			b = m.orig[id].emit(b, id, m.encodeSection(nil, id))
		}
		emitCustoms(sectionRank[id])
	}
	return b
}

func (m *Module) hasContent(id byte) bool {
	switch id {
	case SecType:
		return len(m.Types) > 0
	case SecImport:
		return len(m.Imports) > 0
	case SecFunction:
		return len(m.Funcs) > 0
	case SecTable:
		return len(m.Tables) > 0
	case SecMemory:
		return len(m.Memories) > 0
	case SecGlobal:
		return len(m.Globals) > 0
	case SecExport:
		return len(m.Exports) > 0
	case SecStart:
		return m.Start != nil
	case SecElement:
		return len(m.Elems) > 0
	case SecDataCount:
		return m.DataCount != nil
	case SecCode:
		return len(m.Code) > 0
	case SecData:
		return len(m.Data) > 0
	}
	return false
}
