package wasm

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental/table"
)

// wazeroEngine compiles with wazero's optimizing compiler (pure Go).
type wazeroEngine struct{}

var (
	cachesMu sync.Mutex
	caches   = map[string]wazero.CompilationCache{}
)

func compilationCache(dir string) (wazero.CompilationCache, error) {
	cachesMu.Lock()
	defer cachesMu.Unlock()
	if c, ok := caches[dir]; ok {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, err
	}
	caches[dir] = c
	return c, nil
}

type wazeroModule struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
}

func (wazeroEngine) compile(ctx context.Context, bin []byte, cacheDir string) (compiledModule, error) {
	cfg := wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2)
	if cacheDir != "" {
		cache, err := compilationCache(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
		cfg = cfg.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	compiled, err := rt.CompileModule(ctx, bin)
	if err != nil {
		rt.Close(ctx)
		return nil, &UnsupportedError{Kind: "binary", Value: "", Reason: err.Error()}
	}
	return &wazeroModule{rt: rt, compiled: compiled}, nil
}

func (m *wazeroModule) importedFunctions() []importFunc {
	var out []importFunc
	for _, d := range m.compiled.ImportedFunctions() {
		mod, name, _ := d.Import()
		out = append(out, importFunc{mod, name, funcType{d.ParamTypes(), d.ResultTypes()}})
	}
	return out
}

func (m *wazeroModule) exportedFunctions() map[string]funcType {
	out := map[string]funcType{}
	for name, d := range m.compiled.ExportedFunctions() {
		out[name] = funcType{d.ParamTypes(), d.ResultTypes()}
	}
	return out
}

func (m *wazeroModule) exportedMemory(name string) (memType, bool) {
	mem, ok := m.compiled.ExportedMemories()[name]
	if !ok {
		return memType{}, false
	}
	t := memType{min: mem.Min()}
	t.max, t.hasMax = mem.Max()
	return t, true
}

// link registers the host functions as host modules of the runtime. A host
// function finds its vm in the call's ctx (vmKey), which newVM and
// handleRaw set.
func (m *wazeroModule) link(ctx context.Context, impls []hostFunc) error {
	hosts := map[string]wazero.HostModuleBuilder{}
	for i, d := range m.importedFunctions() {
		h := hosts[d.module]
		if h == nil {
			h = m.rt.NewHostModuleBuilder(d.module)
			hosts[d.module] = h
		}
		impl := impls[i]
		f := api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
			v, _ := ctx.Value(vmKey{}).(*vm)
			impl(ctx, v, stack)
		})
		h.NewFunctionBuilder().WithGoModuleFunction(f, d.params, d.results).Export(d.name)
	}
	for name, h := range hosts {
		if _, err := h.Instantiate(ctx); err != nil {
			return fmt.Errorf("wasm: host module %s: %w", name, err)
		}
	}
	return nil
}

func (m *wazeroModule) instantiate(ctx context.Context, v *vm) (instance, error) {
	ctx = withMemory(context.WithValue(ctx, vmKey{}, v), v.limitPages)
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, err
	}
	return wazeroInstance{mod}, nil
}

func (m *wazeroModule) close(ctx context.Context) error { return m.rt.Close(ctx) }

type wazeroInstance struct{ mod api.Module }

func (i wazeroInstance) memory() linearMemory { return i.mod.Memory() }

func (i wazeroInstance) function(name string) function {
	if f := i.mod.ExportedFunction(name); f != nil {
		return f
	}
	return nil
}

func (i wazeroInstance) global(name string) global {
	if g, ok := i.mod.ExportedGlobal(name).(api.MutableGlobal); ok {
		return g
	}
	return nil
}

func (i wazeroInstance) tableFunc(idx uint32, params, results []api.ValueType) function {
	return table.LookupFunction(i.mod, 0, idx, params, results)
}

func (i wazeroInstance) close(ctx context.Context) error { return i.mod.Close(ctx) }
