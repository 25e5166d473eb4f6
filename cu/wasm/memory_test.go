package wasm

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/aonode/aonode/internal/interop"

	"github.com/tetratelabs/wazero/experimental"
)

func TestLinearMemory(t *testing.T) {
	const page = 65536
	for name, mem := range map[string]func() experimental.LinearMemory{
		"reserved": func() experimental.LinearMemory { return newMemory(8 * page) },
		"slice":    func() experimental.LinearMemory { return &sliceMemory{} },
	} {
		t.Run(name, func(t *testing.T) {
			m := mem()
			defer m.Free()
			b := m.Reallocate(page)
			if len(b) != page || b[0] != 0 || b[page-1] != 0 {
				t.Fatalf("first allocation: len %d", len(b))
			}
			copy(b, "hello")
			b[page-1] = 7
			b = m.Reallocate(3 * page)
			if len(b) != 3*page || !bytes.HasPrefix(b, []byte("hello")) || b[page-1] != 7 || b[3*page-1] != 0 {
				t.Fatalf("grown memory lost content or is not zeroed")
			}
			b[3*page-1] = 9 // writable
			if b = m.Reallocate(2 * page); len(b) != 2*page || b[page-1] != 7 {
				t.Fatalf("shrinking reallocation: len %d", len(b))
			}
		})
	}
	if m := newMemory(2 * page); m.Reallocate(3*page) != nil {
		t.Fatal("reserved memory grew past its limit")
	}
}

// TestCloseModuleUnderInstances closes a module whose instance is mid-message
// and then used again: Close waits for the message, and later operations
// fail cleanly instead of touching unmapped memory.
func TestCloseModuleUnderInstances(t *testing.T) {
	ctx := context.Background()
	m, err := Compile(ctx, interop.WaoModule(t, aosFile), Options{
		Format:     FormatEmscripten4,
		Extensions: []string{ExtensionWeaveDrive},
		CacheDir:   filepath.Join(interop.CacheDir(t), "wazero"),
	})
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Instantiate(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	s := &script{t: t}
	mustHandle(t, in, s.boot(), env)
	done := make(chan *Result, 1)
	go func() {
		r, err := in.Handle(ctx, s.eval(`local x = 0 for i = 1, 3e6 do x = x + i end return x`), env)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	for m.alive.TryLock() { // wait until the message is under way
		m.alive.Unlock()
		runtime.Gosched()
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r == nil || r.Failed() {
		t.Fatalf("message under Close: %+v", r)
	}
	if _, err := in.Handle(ctx, s.eval(`return 1`), env); !errors.Is(err, errClosed) {
		t.Fatalf("Handle after Close: %v", err)
	}
	if _, err := in.Snapshot(); !errors.Is(err, errClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
	if _, err := m.Instantiate(ctx, Config{}); !errors.Is(err, errClosed) {
		t.Fatalf("Instantiate after Close: %v", err)
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
