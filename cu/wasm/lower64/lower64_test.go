package lower64

import (
	"context"
	"errors"
	"testing"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func op(o wasmbin.Opcode, imm ...byte) wasmbin.Instr { return wasmbin.Instr{Op: o, Imm: imm} }

// memory64Module builds a memory64 module exporting run() -> i64, which
// exercises stores, loads (one with a ten-byte padded offset), memory.copy,
// memory.fill, memory.grow (including an impossible delta) and memory.size.
func memory64Module(minPages uint64) *wasmbin.Module {
	c64 := wasmbin.I64Const
	fc := func(sub uint32, imm ...byte) wasmbin.Instr {
		return op(wasmbin.Prefixed(wasmbin.PrefixFC, sub), imm...)
	}
	code := []wasmbin.Instr{
		c64(100), c64(0x1122334455667788), op(0x37, 3, 0), // i64.store [100]
		c64(200), c64(100), c64(8), fc(10, 0, 0), // memory.copy 200 <- 100, 8
		c64(300), wasmbin.I32Const(7), c64(4), fc(11, 0), // memory.fill 300, 7, 4
		c64(1), op(wasmbin.OpMemoryGrow, 0), // grow 1: old size 1
		c64(1 << 40), op(wasmbin.OpMemoryGrow, 0), wasmbin.Op(wasmbin.OpI64Add), // grow 2^40: -1
		op(wasmbin.OpMemorySize, 0), wasmbin.Op(wasmbin.OpI64Add), // + 2 pages
		c64(200), op(0x29, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), // i64.load [200], padded offset
		wasmbin.Op(wasmbin.OpI64Add),
		c64(300), op(0x31, 0, 3), wasmbin.Op(wasmbin.OpI64Add), // i64.load8_u [303]
		c64(0), op(0x31, 0, 16), wasmbin.Op(wasmbin.OpI64Add), // i64.load8_u [0+16]: data 'h'
		wasmbin.Op(wasmbin.OpEnd),
	}
	m, err := wasmbin.Decode([]byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		panic(err)
	}
	m.Types = []wasmbin.FuncType{{Results: []wasmbin.ValType{wasmbin.I64}}}
	m.Funcs = []uint32{0}
	m.Memories = []wasmbin.Limits{{Flags: 5, Min: minPages, Max: 70000}}
	m.Exports = []wasmbin.Export{{Name: "run", Kind: wasmbin.KindFunc, Index: 0}}
	m.Code = []wasmbin.Func{{Code: code}}
	m.Data = []wasmbin.Data{{Offset: []wasmbin.Instr{c64(16), wasmbin.Op(wasmbin.OpEnd)}, Init: []byte("hello")}}
	return m
}

func TestLowerRuns(t *testing.T) {
	m := memory64Module(1)
	if err := Lower(m); err != nil {
		t.Fatal(err)
	}
	if l := m.Memories[0]; l.Is64() || l.Max != MaxPages {
		t.Fatalf("limits after lowering: %+v", l)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(api.CoreFeaturesV2))
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, m.Encode())
	if err != nil {
		t.Fatalf("lowered module does not instantiate: %v", err)
	}
	res, err := mod.ExportedFunction("run").Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(1) - 1 + 2 + 0x1122334455667788 + 7 + 'h'
	if res[0] != want {
		t.Fatalf("run() = %#x, want %#x", res[0], want)
	}
}

func TestLowerRefuses(t *testing.T) {
	if err := Lower(memory64Module(65537)); err == nil {
		t.Fatal("a minimum over 4 GiB was accepted")
	}
	m := memory64Module(1)
	m.Memories[0].Flags = 1
	if err := Lower(m); !errors.Is(err, ErrNotMemory64) {
		t.Fatalf("memory32 module: %v", err)
	}
	m = memory64Module(1)
	m.Code[0].Code = append([]wasmbin.Instr{wasmbin.I64Const(0), op(wasmbin.Prefixed(wasmbin.PrefixFE, 0x10), 2, 0), wasmbin.Op(wasmbin.OpDrop)}, m.Code[0].Code...)
	if err := Lower(m); err != nil {
		t.Fatalf("atomic load: %v", err)
	}
}
