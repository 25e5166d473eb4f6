package wasm

import (
	"bytes"
	"context"
	"errors"
	"os"
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

// TestCopySparse copies memories with zero and non-zero pages into a fresh
// buffer and over stale content: the copy is exact, and (where the platform
// tells untouched pages) the pages zero on both sides stay untouched, so a
// rollback base costs resident memory only for what the process wrote.
func TestCopySparse(t *testing.T) {
	const page, pages = 4096, 64
	src := make([]byte, pages*page)
	for _, p := range []int{0, 5, 6, 40, 63} {
		src[p*page+p] = byte(p + 1)
	}
	src[len(src)-1] = 9
	var b imageBuf
	defer b.free()
	got := b.set(src, 1<<20)
	// (Before anything reads the copy: reading a page touches it.)
	if u := untouched(b.buf[:len(src)]); u != nil {
		for p := range pages {
			if want := allZero(src[p*page : (p+1)*page]); u[p] != want {
				t.Errorf("page %d: untouched %v, zero in the source %v", p, u[p], want)
			}
		}
	} else if f, err := os.Open("/proc/self/pagemap"); err == nil {
		f.Close()
		t.Error("untouched cannot tell the pages of an anonymous mapping, though /proc/self/pagemap opens")
	}
	if !bytes.Equal(got, src) {
		t.Fatal("copy differs")
	}
	// Over stale content: pages non-zero before and zero now are cleared.
	src2 := make([]byte, pages*page)
	src2[7*page] = 1
	if got := b.set(src2, 1<<20); !bytes.Equal(got, src2) {
		t.Fatal("copy over stale content differs")
	}
	// A source that is not ours is read, never trusted to be zero.
	dst := make([]byte, len(src))
	copySparse(dst, src, false)
	if !bytes.Equal(dst, src) {
		t.Fatal("copy from a Go slice differs")
	}
}
