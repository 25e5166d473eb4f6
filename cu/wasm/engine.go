package wasm

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/tetratelabs/wazero/api"
)

// The engine seam. A Module is compiled by one engine, the code generator
// and runtime that executes the (rewritten) module binary. Everything else,
// the host ABI (host.go, host64.go, drive.go), the handle protocol, the
// fuel and gas limits and the rollback journal (instance.go), is written
// once over the small interfaces below, so both engines run the same
// instrumented binary through the same host code and agree on every result
// and every byte of memory.
//
// wazero (engine_wazero.go) is pure Go and always built in. Wasmtime
// (engine_wasmtime.go) needs cgo and the build tag wasmtime; it compiles
// with Cranelift and removes bounds checks with guard pages.

// Engine names, for Options.Engine.
const (
	EngineWazero   = "wazero"
	EngineWasmtime = "wasmtime"
)

// engine compiles module binaries.
type engine interface {
	compile(ctx context.Context, bin []byte, cacheDir string) (compiledModule, error)
}

var engines = map[string]engine{EngineWazero: wazeroEngine{}}

// Engines lists the engines built into this binary, the default first.
func Engines() []string {
	var names []string
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	d := DefaultEngine()
	return append([]string{d}, slices.DeleteFunc(names, func(n string) bool { return n == d })...)
}

// DefaultEngine is the engine Compile uses when Options.Engine is empty:
// Wasmtime when it is built in (it is the faster), else wazero.
func DefaultEngine() string {
	if _, ok := engines[EngineWasmtime]; ok {
		return EngineWasmtime
	}
	return EngineWazero
}

// CheckEngine reports whether name ("" for the default) is an engine of
// this binary, so that a bad choice fails at start rather than at the first
// process.
func CheckEngine(name string) error {
	_, _, err := lookupEngine(name)
	return err
}

func lookupEngine(name string) (engine, string, error) {
	if name == "" {
		name = DefaultEngine()
	}
	e, ok := engines[name]
	if !ok {
		if name == EngineWasmtime {
			return nil, "", fmt.Errorf("wasm: engine %q is not built into this binary (build with CGO_ENABLED=1 -tags wasmtime)", name)
		}
		return nil, "", fmt.Errorf("wasm: unknown engine %q (this binary has %v)", name, Engines())
	}
	return e, name, nil
}

// funcType is a function signature, in wazero's value type vocabulary
// (which both engines use).
type funcType struct{ params, results []api.ValueType }

func (t funcType) ParamTypes() []api.ValueType  { return t.params }
func (t funcType) ResultTypes() []api.ValueType { return t.results }

// importFunc is one function import of a module.
type importFunc struct {
	module, name string
	funcType
}

func (d importFunc) Import() (module, name string, ok bool) { return d.module, d.name, true }

// memType is the module's exported "memory".
type memType struct {
	min, max uint32
	hasMax   bool
}

// hostFunc is the engine-neutral form of a host function: v is the calling
// instance's vm, stack holds the parameters (i32 zero-extended) and receives
// the results, as wazero's GoModuleFunc stack does. A host function aborts
// the wasm call by panicking; the panic comes out of function.CallWithStack
// as its error.
type hostFunc func(ctx context.Context, v *vm, stack []uint64)

// compiledModule is a module compiled by an engine.
type compiledModule interface {
	importedFunctions() []importFunc
	exportedFunctions() map[string]funcType
	exportedMemory(name string) (memType, bool)
	// link gives the implementations of the imports, impls[i] serving
	// importedFunctions()[i]; it is called once, before instantiate.
	link(ctx context.Context, impls []hostFunc) error
	// instantiate makes an instance of the module whose host functions see
	// v, with a linear memory that may grow up to v.limitPages.
	instantiate(ctx context.Context, v *vm) (instance, error)
	close(ctx context.Context) error
}

// instance is a module instance of an engine.
type instance interface {
	memory() linearMemory
	// function is the exported function name, nil if there is none.
	function(name string) function
	// global is the exported mutable global name, nil if there is none.
	global(name string) global
	// tableFunc is entry idx of table 0, which must have type (params,
	// results); if it is not, it panics with the engine's trap.
	tableFunc(idx uint32, params, results []api.ValueType) function
	close(ctx context.Context) error
}

// function is a callable wasm function; wazero's api.Function is one. It
// must not be re-entered while it runs (see vm.tableFunc).
type function interface {
	CallWithStack(ctx context.Context, stack []uint64) error
}

// global is a mutable i32 or i64 global; wazero's api.MutableGlobal is one.
type global interface {
	Get() uint64
	Set(uint64)
}

// linearMemory is the part of wazero's api.Memory the host uses. Offsets are
// checked: out of range reads return false, writes do nothing and return
// false. A slice from Read is valid until the memory grows.
type linearMemory interface {
	Size() uint32
	Grow(deltaPages uint32) (previousPages uint32, ok bool)
	Read(offset, byteCount uint32) ([]byte, bool)
	Write(offset uint32, v []byte) bool
	WriteUint16Le(offset uint32, v uint16) bool
	ReadUint32Le(offset uint32) (uint32, bool)
	WriteUint32Le(offset, v uint32) bool
	ReadUint64Le(offset uint32) (uint64, bool)
	WriteUint64Le(offset uint32, v uint64) bool
}
