package wasm

import (
	"context"
	"strings"
	"testing"
)

// TestRevert undoes a message through Config.Revert: its result stands, its
// changes to state do not, memory it grew stays, and the instance goes on
// (including a later rollback, which must land on the reverted state).
func TestRevert(t *testing.T) {
	ctx := context.Background()
	revert := false
	in, err := aos(t).Instantiate(ctx, Config{Revert: func(*Result) bool { return revert }})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	env := testEnv(t)
	s := &script{t: t}
	mustHandle(t, in, s.boot(), env)
	mustHandle(t, in, s.eval(`X = 1`), env)
	before := in.MemorySize()

	revert = true
	r := mustHandle(t, in, s.eval(`X = 2; Big = string.rep("x", 64 * 1024 * 1024); return "grown"`), env)
	revert = false
	if r.Failed() || !strings.Contains(string(r.Output), "grown") {
		t.Fatalf("reverted message's result: %s %s", r.Output, r.Error)
	}
	if after := in.MemorySize(); after <= before {
		t.Fatalf("memory %d after the reverted message, %d before: the growth should stay", after, before)
	}
	if r := mustHandle(t, in, s.eval(`return tostring(X) .. " " .. tostring(Big)`), env); !strings.Contains(string(r.Output), "1 nil") {
		t.Fatalf("state after revert: %s", r.Output)
	}
	mustHandle(t, in, s.eval(`X = 3`), env)
	if r := mustHandle(t, in, s.eval(`error("boom")`), env); !r.Failed() {
		t.Fatal("error did not fail")
	}
	if r := mustHandle(t, in, s.eval(`return tostring(X) .. " " .. tostring(Big)`), env); !strings.Contains(string(r.Output), "3 nil") {
		t.Fatalf("state after a rollback following the revert: %s", r.Output)
	}
}
