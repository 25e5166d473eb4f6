package wasm

import (
	"bytes"
	"context"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

// TestRestoreImage restores a snapshot through an Image: the instance
// continues exactly as one restored from the bytes, keeps the image as its
// rollback base (later bases reuse it), and rolls back onto it.
func TestRestoreImage(t *testing.T) {
	ctx := context.Background()
	m := aos(t)
	a, s, env := booted(t, Config{})
	mustHandle(t, a, s.eval(`X = 41`), env)
	img := snapshot(t, a)
	a.Close(ctx)

	im, err := NewImage(len(img))
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(im.Bytes()) || len(im.Bytes()) != len(img) {
		t.Fatal("a new image is not zero and of its size")
	}
	copy(im.Bytes(), img)
	buf := &im.Bytes()[0]
	b, err := m.RestoreImage(ctx, Config{}, im)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	c, err := m.Restore(ctx, Config{}, img)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	next := s.eval(`X = X + 1; return "X=" .. X`)
	rb, rc := mustHandle(t, b, next, env), mustHandle(t, c, next, env)
	if !bytes.Contains(rb.Output, []byte("X=42")) || !bytes.Equal(rb.Output, rc.Output) {
		t.Fatalf("after RestoreImage: %s; after Restore: %s", rb.Output, rc.Output)
	}
	if !bytes.Equal(memory(t, b), memory(t, c)) {
		t.Fatal("memories differ between RestoreImage and Restore")
	}
	if r := mustHandle(t, b, s.eval(`X = 0; error("boom")`), env); !r.Failed() {
		t.Fatal("did not fail")
	}
	b.rebase(b.vm)
	if &b.base[0] != buf {
		t.Error("the rollback base left the restored image")
	}
	if r := mustHandle(t, b, s.eval(`return "X=" .. X`), env); !bytes.Contains(r.Output, []byte("X=42")) {
		t.Fatalf("after a rollback: %s", r.Output)
	}
	if _, err := NewImage(-1); err == nil {
		t.Error("negative image size accepted")
	}
}

// TestFork: a forked instance evaluates like one restored from the source's
// snapshot, leaves the source alone, and closes when a message fails.
func TestFork(t *testing.T) {
	ctx := context.Background()
	m := aos(t)
	src, s, env := booted(t, Config{})
	mustHandle(t, src, s.eval(`X = 7`), env)
	before := memory(t, src)

	f, err := m.Fork(ctx, Config{}, src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Restore(ctx, Config{}, before)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if !bytes.Equal(memory(t, f), memory(t, r)) {
		t.Fatal("a fork's memory differs from a restore of the source's memory")
	}
	next := s.eval(`X = X * 6; return "X=" .. X`)
	rf, rr := mustHandle(t, f, next, env), mustHandle(t, r, next, env)
	if !bytes.Contains(rf.Output, []byte("X=42")) || !bytes.Equal(rf.Output, rr.Output) || !bytes.Equal(memory(t, f), memory(t, r)) {
		t.Fatalf("fork: %s; restore: %s", rf.Output, rr.Output)
	}
	if !bytes.Equal(memory(t, src), before) {
		t.Fatal("evaluating on the fork changed the source")
	}
	if res := mustHandle(t, f, s.eval(`error("boom")`), env); !res.Failed() {
		t.Fatal("did not fail")
	}
	if _, err := f.Handle(ctx, s.eval(`return 1`), env); err == nil {
		t.Fatal("a fork went on after a failed message")
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}

	other, err := Compile(ctx, interop.WaoModule(t, aosFile), Options{Format: FormatEmscripten4, Uninterruptible: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Fork(ctx, Config{}, src); err == nil {
		t.Fatal("fork across modules accepted")
	}
	src.Close(ctx)
	if _, err := m.Fork(ctx, Config{}, src); err == nil {
		t.Fatal("fork of a closed instance accepted")
	}
}
