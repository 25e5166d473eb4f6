package meter

import (
	"context"
	"errors"
	"testing"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

var errHostOutOfGas = errors.New("out of gas!")

// meteredRunner instantiates richModule metered with AddGas, and with
// InlineGas too when inline is set, in a fresh runtime. run calls an export
// under a gas limit and returns the gas used and whether it ran out: with
// the host usegas (the reference's gas.use) or the inlined counter.
func meteredRunner(t *testing.T, vt wasmbin.ValType, inline bool) (run func(name string, arg uint64, limit int64) (int64, bool)) {
	t.Helper()
	m, err := wasmbin.Decode(richModule(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := AddGas(m, vt); err != nil {
		t.Fatal(err)
	}
	if inline {
		if err := InlineGas(m); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	var used, limit int64
	pt := api.ValueTypeI32
	if vt == wasmbin.I64 {
		pt = api.ValueTypeI64
	}
	if _, err := rt.NewHostModuleBuilder(GasImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			if inline {
				t.Error("usegas called although inlined")
			}
			if vt == wasmbin.I32 {
				used += int64(int32(s[0]))
			} else {
				used += int64(s[0])
			}
			if used > limit {
				panic(errHostOutOfGas)
			}
		}), []api.ValueType{pt}, nil).Export(GasImportName).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	env := rt.NewHostModuleBuilder("env")
	env.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), nil, nil).Export("f")
	env.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
		s[0] = uint64(uint32(s[0]) * 2)
	}), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export("h")
	if _, err := env.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.InstantiateWithConfig(ctx, providerModule(t), wazero.NewModuleConfig().WithName("js")); err != nil {
		t.Fatal(err)
	}
	limit = 1 << 62 // the start function runs at instantiation
	mod, err := rt.InstantiateWithConfig(ctx, m.Encode(), wazero.NewModuleConfig().WithName("metered"))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	var usedG, limitG api.MutableGlobal
	if inline {
		usedG = mod.ExportedGlobal(GasUsedExport).(api.MutableGlobal)
		limitG = mod.ExportedGlobal(GasLimitExport).(api.MutableGlobal)
	}
	return func(name string, arg uint64, lim int64) (int64, bool) {
		t.Helper()
		used, limit = 0, lim
		if inline {
			usedG.Set(0)
			limitG.Set(uint64(lim))
		}
		var args []uint64
		if name != "one" {
			args = []uint64{arg}
		}
		_, err := mod.ExportedFunction(name).Call(ctx, args...)
		if inline {
			used = int64(usedG.Get())
		}
		switch {
		case err == nil:
			return used, false
		case errors.Is(err, errHostOutOfGas), inline && used > lim:
			return used, true
		}
		t.Fatalf("%s(%d): %v", name, arg, err)
		return 0, false
	}
}

// TestInlineGas checks that the inlined counter counts and stops exactly as
// the host usegas does: the same gas for every call, and under every limit
// the same point of failure (the gas used when it ran out).
func TestInlineGas(t *testing.T) {
	calls := []struct {
		name string
		arg  uint64
	}{{"one", 0}, {"sum", 1}, {"sum", 100}, {"flow", 0}, {"flow", 1}, {"flow", 7}}
	for _, mt := range meterTypes() {
		t.Run(mt.name, func(t *testing.T) {
			host, inl := meteredRunner(t, mt.vt, false), meteredRunner(t, mt.vt, true)
			for _, c := range calls {
				full, oog := host(c.name, c.arg, 1<<62)
				if oog {
					t.Fatalf("%s(%d) ran out of unlimited gas", c.name, c.arg)
				}
				if g, oog := inl(c.name, c.arg, 1<<62); g != full || oog {
					t.Errorf("%s(%d): inlined gas %d (out: %v), host %d", c.name, c.arg, g, oog, full)
				}
				for _, lim := range []int64{0, 91, 92, full / 3, full / 2, full - 1, full} {
					hg, hoog := host(c.name, c.arg, lim)
					ig, ioog := inl(c.name, c.arg, lim)
					if hg != ig || hoog != ioog {
						t.Errorf("%s(%d) limit %d: inlined gas %d (out: %v), host %d (out: %v)", c.name, c.arg, lim, ig, ioog, hg, hoog)
					}
					if want := lim < full; hoog != want {
						t.Errorf("%s(%d) limit %d: out of gas %v, want %v", c.name, c.arg, lim, hoog, want)
					}
				}
			}
		})
	}
}

func TestInlineGasNeedsImport(t *testing.T) {
	m, err := wasmbin.Decode(richModule(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := InlineGas(m); err == nil {
		t.Fatal("InlineGas accepted a module without metering.usegas")
	}
}
