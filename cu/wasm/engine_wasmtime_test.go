//go:build wasmtime && cgo

package wasm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

// TestWasmtimeCache: a compiled module is kept in the cache directory and
// used by the next Compile; a corrupt one is compiled again, not trusted.
func TestWasmtimeCache(t *testing.T) {
	dir := t.TempDir()
	bin := interop.WaoModule(t, aosFile)
	compile := func() {
		t.Helper()
		m, err := Compile(context.Background(), bin, Options{Format: FormatEmscripten4, Engine: EngineWasmtime, CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close(context.Background())
		in, err := m.Instantiate(context.Background(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close(context.Background())
		s := &script{t: t}
		mustHandle(t, in, s.boot(), testEnv(t))
		if got := outputData(t, mustHandle(t, in, s.eval("return 6*7"), testEnv(t))); got != "42" {
			t.Fatalf("6*7 = %q", got)
		}
	}
	compile()
	files, _ := filepath.Glob(filepath.Join(dir, EngineWasmtime, wasmtimeVersion, "*.cwasm"))
	if len(files) != 1 {
		t.Fatalf("cache holds %v, want one compiled module", files)
	}
	st, _ := os.Stat(files[0])
	compile() // from the cache
	if err := os.WriteFile(files[0], []byte("\x7fELF not a module"), 0o644); err != nil {
		t.Fatal(err)
	}
	compile() // a corrupt entry: compiled again
	if st2, _ := os.Stat(files[0]); st2.Size() != st.Size() {
		t.Fatalf("the corrupt cache entry was not replaced: %d bytes, want %d", st2.Size(), st.Size())
	}
}
