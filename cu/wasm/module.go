// Package wasm runs AO process modules (emscripten-built Lua/aos WASM) for the
// Compute Unit, reproducing what the reference JavaScript host
// (@permaweb/ao-loader 0.0.49) does: the emscripten ABI imports, the
// handle(msg, env) protocol, memory growth policy and memory-image
// checkpoints (docs: shared/spec/runtime.md). The code runs on wazero (pure
// Go) or, in a binary built with -tags wasmtime, on Wasmtime (engine.go);
// both give the same results and memory.
//
// The host is sealed: process code cannot run commands, open host files or
// observe host time; everything it sees comes from the message, the env and
// deterministic host functions, so two CUs compute the same results.
package wasm

import (
	"context"
	"errors"
	"path/filepath"
	"sync"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
	"github.com/tetratelabs/wazero/api"
)

// Options describe a module (its tags, units.md §5.3) and how to compile it.
type Options struct {
	// Format is the module's Module-Format tag.
	Format string
	// Extensions are the module's Extension tag values. Only "WeaveDrive" is
	// known; any other makes Compile fail with an *UnsupportedError.
	Extensions []string
	// CacheDir, if set, keeps the engine's compiled machine code there, so
	// that a restarted CU (or test binary) does not recompile aos (seconds of
	// CPU).
	CacheDir string
	// Engine is the engine to compile with (EngineWazero, EngineWasmtime);
	// "" is DefaultEngine. Engines lists those built into the binary. Both
	// run the same rewritten binary through the same host functions, so they
	// give the same results and memory for every message.
	Engine string
	// Uninterruptible compiles without the fuel checks that let a ctx
	// deadline or cancellation stop a running message (a check at every
	// function entry and loop header). Messages run slightly faster, but a
	// `while true do end` then holds its goroutine forever. Only for trusted
	// modules and benchmarks.
	Uninterruptible bool
}

// Module is a compiled process module. It is safe for concurrent use; each
// process gets its own Instance.
type Module struct {
	format     format
	weaveDrive bool
	engine     string
	compiled   compiledModule
	maxPages   uint32 // declared memory maximum
	minPages   uint32
	sigs       map[string]funcType // exports by name
	fuel       bool                // instrumented by meter.AddFuel
	ptr64      bool                // wasm64 ABI (i64 pointers), memory lowered to 32 bits
	metered    bool                // instrumented by meter.AddGas (a -metering format)
	dynCall    bool                // invoke_<sig> calls the export dynCall_<sig> (see invoke)

	// alive guards the instances' linear memories, which Close unmaps
	// (memory_unix.go): every Instance operation holds it for reading, so
	// Close waits for running messages instead of pulling memory from under
	// them.
	alive  sync.RWMutex
	closed bool
}

// errClosed is returned by Instance operations after Module.Close.
var errClosed = errors.New("wasm: module is closed")

// enter starts an instance operation; false means the module is closed.
func (m *Module) enter() bool {
	m.alive.RLock()
	if m.closed {
		m.alive.RUnlock()
		return false
	}
	return true
}

func (m *Module) leave() { m.alive.RUnlock() }

// Compile validates and compiles a module. Errors for modules this runtime
// cannot run match ErrUnsupported; compile once per module id and reuse.
func Compile(ctx context.Context, bin []byte, opts Options) (*Module, error) {
	f, err := lookupFormat(opts.Format)
	if err != nil {
		return nil, err
	}
	eng, engName, err := lookupEngine(opts.Engine)
	if err != nil {
		return nil, err
	}
	m := &Module{format: f, engine: engName}
	for _, e := range opts.Extensions {
		if e != ExtensionWeaveDrive {
			return nil, &UnsupportedError{Kind: "Extension", Value: e}
		}
		m.weaveDrive = true
	}

	// A deadline or cancellation of the ctx given to Handle stops a runaway
	// process at its next fuel check (see outOfFuel); the instance is then
	// rebuilt from its last good state. wazero's own WithCloseOnContextDone
	// would do the same with a check on every call and loop back-edge, which
	// costs 2-3x in speed.
	m.fuel = !opts.Uninterruptible
	m.ptr64 = f.wasm64
	m.metered = f.metered
	m.dynCall = f.metered || invokeViaDynCall
	ro := rewriteOpts{lower64: f.wasm64, fuel: m.fuel}
	if f.metered {
		// The reference meters with an i32 meter for wasm32 formats and an
		// i64 one otherwise (runtime.md §9.2).
		ro.gas = wasmbin.I32
		if f.wasm64 {
			ro.gas = wasmbin.I64
		}
	}
	if bin, err = rewrite(bin, ro, opts.CacheDir); err != nil {
		return nil, &UnsupportedError{Kind: "binary", Value: opts.Format, Reason: err.Error()}
	}
	m.compiled, err = eng.compile(ctx, bin, engineCacheDir(opts.CacheDir, engName))
	if err != nil {
		var ue *UnsupportedError
		if errors.As(err, &ue) && ue.Value == "" {
			ue.Value = opts.Format
		}
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.compiled.close(ctx)
		}
	}()
	mem, found := m.compiled.exportedMemory("memory")
	if !found {
		return nil, &UnsupportedError{Kind: "export", Value: "memory", Reason: "missing"}
	}
	m.minPages = mem.min
	m.maxPages = 65536
	if mem.hasMax {
		m.maxPages = mem.max
	}
	m.sigs = m.compiled.exportedFunctions()
	if err := m.checkExports(); err != nil {
		return nil, err
	}
	if err := m.buildHost(ctx); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

// Close releases the compiled code and every instance of the module, after
// waiting for the instance operations under way.
func (m *Module) Close(ctx context.Context) error {
	m.alive.Lock()
	defer m.alive.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.compiled.close(ctx)
}

// Format returns the module's Module-Format.
func (m *Module) Format() string { return m.format.name }

// Engine returns the name of the engine the module was compiled with.
func (m *Module) Engine() string { return m.engine }

// engineCacheDir is where an engine keeps its compiled code under the
// CacheDir of Options: wazero in the directory itself (as before there was
// a choice), others in a subdirectory of their name.
func engineCacheDir(dir, engine string) string {
	if dir == "" || engine == EngineWazero {
		return dir
	}
	return filepath.Join(dir, engine)
}

type sig struct{ params, results []api.ValueType }

var (
	i32 = api.ValueTypeI32
	f64 = api.ValueTypeF64
)

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkExports makes sure the exports the host protocol needs exist with
// the signatures of the module's pointer width, under either naming
// generation of the stack helpers.
func (m *Module) checkExports() error {
	p, width := i32, "wasm32"
	if m.ptr64 {
		p, width = api.ValueTypeI64, "wasm64"
	}
	need := map[string]sig{
		"handle":   {[]api.ValueType{p, p}, []api.ValueType{p}},
		"setThrew": {[]api.ValueType{p, i32}, nil},
	}
	if m.format.callsMain {
		need["main"] = sig{[]api.ValueType{i32, p}, []api.ValueType{i32}}
	}
	if _, ok := m.sigs["_emscripten_stack_alloc"]; ok {
		need["_emscripten_stack_alloc"] = sig{[]api.ValueType{p}, []api.ValueType{p}}
		need["_emscripten_stack_restore"] = sig{[]api.ValueType{p}, nil}
		need["emscripten_stack_get_current"] = sig{nil, []api.ValueType{p}}
	} else {
		need["stackAlloc"] = sig{[]api.ValueType{p}, []api.ValueType{p}}
		need["stackRestore"] = sig{[]api.ValueType{p}, nil}
		need["stackSave"] = sig{nil, []api.ValueType{p}}
	}
	for name, s := range need {
		d, ok := m.sigs[name]
		if !ok {
			return &UnsupportedError{Kind: "export", Value: name, Reason: "missing"}
		}
		if !sameTypes(d.ParamTypes(), s.params) || !sameTypes(d.ResultTypes(), s.results) {
			return &UnsupportedError{Kind: "export", Value: name, Reason: "signature is not " + width}
		}
	}
	return nil
}

// invokeViaDynCall makes the invoke_<sig> imports of unmetered formats call
// dynCall_<sig> too, as the glue does (the metered formats always do).
var invokeViaDynCall = false
