package meter

import (
	"context"
	"errors"
	"testing"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// testModule has an import "env" "f" (so the fuel import shifts defined
// functions), "spin" (an endless loop), "sum" (n iterations calling "one")
// and "one".
//
//	(func $f (import "env" "f"))
//	(func $one (result i32) i32.const 1)
//	(func $sum (export "sum") (param i32) (result i32) (local i32)
//	  loop local.get 1 call $one i32.add local.set 1
//	    local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0 end
//	  local.get 1)
//	(func $spin (export "spin") loop br 0 end)
var testModule = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x0d\x03\x60\x00\x00\x60\x00\x01\x7f\x60\x01\x7f\x01\x7f" + // types
	"\x02\x09\x01\x03env\x01f\x00\x00" + // import env.f
	"\x03\x04\x03\x01\x02\x00" + // functions: one, sum, spin
	"\x07\x0e\x02\x03sum\x00\x02\x04spin\x00\x03" + // exports
	"\x0a\x28\x03" +
	"\x04\x00\x41\x01\x0b" + // one
	"\x19\x01\x01\x7f\x03\x40\x20\x01\x10\x01\x6a\x21\x01\x20\x00\x41\x01\x6b\x22\x00\x0d\x00\x0b\x20\x01\x0b" + // sum
	"\x07\x00\x03\x40\x0c\x00\x0b\x0b") // spin

func instantiate(t *testing.T, refill func(ctx context.Context, calls int) uint64) (api.Module, *int) {
	t.Helper()
	wm, err := wasmbin.Decode(testModule)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddFuel(wm); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	calls := 0
	_, err = rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), nil, nil).Export("f").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.NewHostModuleBuilder(FuelImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
			calls++
			stack[0] = refill(ctx, calls)
		}), []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}).Export(FuelImportName).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, wm.Encode())
	if err != nil {
		t.Fatalf("instrumented module: %v", err)
	}
	return mod, &calls
}

var errStop = errors.New("stop")

func TestFuel(t *testing.T) {
	cases := []struct {
		name      string
		fn        string
		arg       uint64
		refill    uint64
		stopAfter int
		wantCalls int
		want      uint64
	}{
		// sum: entry 3 + 10 per iteration, one: 2 per call. A refill sets
		// the fuel (forgiving the overdraft), so 100 iterations (1,203)
		// take the first call plus 11 refills of 100.
		{"plenty of fuel", "sum", 10, 1 << 40, 0, 1, 10},
		{"refills", "sum", 100, 100, 0, 12, 100},
		{"endless loop stopped", "spin", 0, 1000, 5, 5, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mod, calls := instantiate(t, func(ctx context.Context, n int) uint64 {
				if c.stopAfter > 0 && n >= c.stopAfter {
					panic(errStop)
				}
				return c.refill
			})
			var args []uint64
			if c.fn == "sum" {
				args = append(args, c.arg)
			}
			res, err := mod.ExportedFunction(c.fn).Call(context.Background(), args...)
			if c.stopAfter > 0 {
				if !errors.Is(err, errStop) {
					t.Fatalf("err = %v, want the host's abort", err)
				}
			} else if err != nil || res[0] != c.want {
				t.Fatalf("= %v, %v; want %d", res, err, c.want)
			}
			if *calls != c.wantCalls {
				t.Fatalf("%d host calls, want %d", *calls, c.wantCalls)
			}
		})
	}
}

func TestFuelCosts(t *testing.T) {
	wm, err := wasmbin.Decode(testModule)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddFuel(wm); err != nil {
		t.Fatal(err)
	}
	// one is a leaf: no check, its 2 instructions charged where it is
	// called.
	if len(wm.Code[0].Code) != 2 {
		t.Fatalf("leaf function instrumented: %d instructions", len(wm.Code[0].Code))
	}
	// sum: 3 instructions outside the loop (loop, local.get, end) and 10
	// in it (its end included), plus one's 2.
	code := wm.Code[1].Code
	entry, _ := code[1].Int()
	loop, _ := code[fuelCheckLen+1+1].Int()
	if entry != 3 || loop != 12 {
		t.Fatalf("costs: entry %d, loop %d; want 3, 12", entry, loop)
	}
	if c, _ := code[fuelCheckLen+1+fuelCheckLen+1].Index(); code[fuelCheckLen+1+fuelCheckLen+1].Op != wasmbin.OpCall || c != 2 {
		t.Fatalf("call $one not renumbered to 2: %v %d", code[fuelCheckLen+1+fuelCheckLen+1].Op, c)
	}
	if err := AddFuel(wm); err == nil {
		t.Fatal("instrumenting twice was accepted")
	}
}
