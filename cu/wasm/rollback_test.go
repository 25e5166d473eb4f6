package wasm

import (
	"bytes"
	"runtime"
	"testing"
)

// memory returns a copy of the instance's memory without taking a Snapshot
// (which would also start a new rollback base).
func memory(t *testing.T, in *Instance) []byte {
	t.Helper()
	mem := in.vm.mem
	b, ok := mem.Read(0, mem.Size())
	if !ok {
		t.Fatal("memory unreadable")
	}
	return bytes.Clone(b)
}

// sameState reports whether after holds before's memory, followed only by
// zeros (a rollback may leave memory larger, as the reference's does).
func sameState(before, after []byte) bool {
	return len(after) >= len(before) && bytes.Equal(after[:len(before)], before) && allZero(after[len(before):])
}

// TestRollbackMemory fails messages with the rollback base in each of its
// states (just taken, with a journal to replay, folded after many messages)
// and checks that the memory is exactly what it was before the failed
// message, and that the process goes on from there.
func TestRollbackMemory(t *testing.T) {
	in, s, env := booted(t, Config{})
	fail := func(stage string) {
		t.Helper()
		before := memory(t, in)
		if r := mustHandle(t, in, s.eval(`Lost = (Lost or 0) + 1; Junk = string.rep("y", 1 << 20); error("boom")`), env); !r.Failed() {
			t.Fatalf("%s: the failing message did not fail", stage)
		}
		if after := memory(t, in); !sameState(before, after) {
			t.Fatalf("%s: memory after the rollback (%d bytes) is not the memory before the failed message (%d bytes)", stage, len(after), len(before))
		}
	}

	fail("fresh instance, journal of one")
	if _, err := in.Snapshot(); err != nil {
		t.Fatal(err)
	}
	fail("base just taken, empty journal")
	for i := range 5 {
		mustHandle(t, in, s.eval(`N = (N or 0) + 1; T = {}; for i = 1, 1000 do T[i] = i end`), env)
		if i == 2 {
			in.rebase(in.vm) // as record does after journalMaxEntries messages
		}
	}
	fail("folded base, journal of two")
	if r := mustHandle(t, in, s.eval(`return tostring(N) .. " " .. tostring(Lost)`), env); !bytes.Contains(r.Output, []byte("5 nil")) {
		t.Fatalf("state after the rollbacks: %s", r.Output)
	}
}

// TestRollbackBaseOffHeap: the rollback base (a copy of the whole memory,
// 100 MB for aos) is kept outside the Go heap and reused, so taking it
// neither grows the heap the garbage collector paces on nor allocates.
func TestRollbackBaseOffHeap(t *testing.T) {
	in, s, env := booted(t, Config{})
	size := in.MemorySize()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	h0 := heap()
	in.rebase(in.vm)
	first := &in.base[0]
	for range 3 {
		mustHandle(t, in, s.eval(`X = (X or 0) + 1`), env)
		in.rebase(in.vm)
	}
	if h1 := heap(); h1 > h0 && h1-h0 > size/4 {
		t.Errorf("the Go heap grew by %d bytes over four rollback bases of %d bytes", h1-h0, size)
	}
	if &in.base[0] != first {
		t.Error("each rollback base got a new buffer")
	}
	if r := mustHandle(t, in, s.eval(`error("boom")`), env); !r.Failed() {
		t.Fatal("did not fail")
	}
	if r := mustHandle(t, in, s.eval(`return "X=" .. X`), env); !bytes.Contains(r.Output, []byte("X=3")) {
		t.Fatalf("state after rollback onto the reused base: %s", r.Output)
	}
}
