//go:build wasmtime && cgo

package wasm

// The Wasmtime engine: Cranelift-compiled code whose linear memory accesses
// are checked by guard pages instead of explicit bounds checks. It is built
// only with -tags wasmtime (and cgo): the static library comes with the
// module github.com/bytecodealliance/wasmtime-go, whose package is imported
// for its link flags alone. The calls here go straight to Wasmtime's C API
// (declared below, as in wasmtime 37's headers): the hot paths, calls into
// wasm and host functions, use the "unchecked" raw-value forms, with no
// allocation or type lookup per call, which the Go binding's Func.Call and
// NewFunc do.

/*
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasm_valtype_t wasm_valtype_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasmtime_module wasmtime_module_t;
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_linker wasmtime_linker_t;

typedef struct { size_t size; char *data; } wasm_byte_vec_t;
typedef struct { size_t size; wasm_valtype_t **data; } wasm_valtype_vec_t;

typedef struct { uint64_t store_id; void *private_; } wasmtime_func_t;
typedef struct { struct { uint64_t store_id; uint32_t private1; }; uint32_t private2; } wasmtime_memory_t;
typedef struct { struct { uint64_t store_id; uint32_t private1; }; uint32_t private2; } wasmtime_table_t;
typedef struct { uint64_t store_id; uint32_t private1; uint32_t private2; uint32_t private3; } wasmtime_global_t;
typedef struct { uint64_t store_id; size_t private_; } wasmtime_instance_t;
typedef union {
	wasmtime_func_t func;
	wasmtime_global_t global;
	wasmtime_table_t table;
	wasmtime_memory_t memory;
	void *sharedmemory;
} wasmtime_extern_union_t;
typedef struct { uint8_t kind; wasmtime_extern_union_t of; } wasmtime_extern_t;
typedef struct { uint64_t store_id; uint32_t private1; uint32_t private2; void *private3; } wasmtime_ref_t;
typedef union {
	int32_t i32;
	int64_t i64;
	float f32;
	double f64;
	wasmtime_ref_t anyref;
	wasmtime_ref_t externref;
	wasmtime_func_t funcref;
	uint8_t v128[16];
} wasmtime_valunion_t;
typedef struct { uint8_t kind; wasmtime_valunion_t of; } wasmtime_val_t;
typedef union {
	int32_t i32;
	int64_t i64;
	float f32;
	double f64;
	uint8_t v128[16];
	uint32_t anyref;
	uint32_t externref;
	void *funcref;
} wasmtime_val_raw_t;

typedef wasm_trap_t *(*wasmtime_func_unchecked_callback_t)(void *env, wasmtime_caller_t *caller,
	wasmtime_val_raw_t *args_and_results, size_t num_args_and_results);

wasm_config_t *wasm_config_new(void);
wasm_engine_t *wasm_engine_new_with_config(wasm_config_t *);
void wasmtime_config_memory_init_cow_set(wasm_config_t *, bool);
void wasmtime_config_max_wasm_stack_set(wasm_config_t *, size_t);
wasmtime_error_t *wasmtime_module_new(wasm_engine_t *, const uint8_t *, size_t, wasmtime_module_t **);
wasmtime_error_t *wasmtime_module_serialize(wasmtime_module_t *, wasm_byte_vec_t *);
wasmtime_error_t *wasmtime_module_deserialize(wasm_engine_t *, const uint8_t *, size_t, wasmtime_module_t **);
void wasmtime_module_delete(wasmtime_module_t *);
void wasm_byte_vec_delete(wasm_byte_vec_t *);
void wasmtime_error_message(const wasmtime_error_t *, wasm_byte_vec_t *);
void wasmtime_error_delete(wasmtime_error_t *);
wasmtime_store_t *wasmtime_store_new(wasm_engine_t *, void *, void (*)(void *));
wasmtime_context_t *wasmtime_store_context(wasmtime_store_t *);
void wasmtime_store_delete(wasmtime_store_t *);
void wasmtime_store_limiter(wasmtime_store_t *, int64_t, int64_t, int64_t, int64_t, int64_t);
void *wasmtime_context_get_data(const wasmtime_context_t *);
wasmtime_context_t *wasmtime_caller_context(wasmtime_caller_t *);
wasmtime_linker_t *wasmtime_linker_new(wasm_engine_t *);
void wasmtime_linker_delete(wasmtime_linker_t *);
wasmtime_error_t *wasmtime_linker_define_func_unchecked(wasmtime_linker_t *, const char *, size_t,
	const char *, size_t, const wasm_functype_t *, wasmtime_func_unchecked_callback_t, void *, void (*)(void *));
wasmtime_error_t *wasmtime_linker_instantiate(const wasmtime_linker_t *, wasmtime_context_t *,
	const wasmtime_module_t *, wasmtime_instance_t *, wasm_trap_t **);
bool wasmtime_instance_export_get(wasmtime_context_t *, const wasmtime_instance_t *, const char *, size_t, wasmtime_extern_t *);
uint8_t *wasmtime_memory_data(const wasmtime_context_t *, const wasmtime_memory_t *);
size_t wasmtime_memory_data_size(const wasmtime_context_t *, const wasmtime_memory_t *);
wasmtime_error_t *wasmtime_memory_grow(wasmtime_context_t *, const wasmtime_memory_t *, uint64_t, uint64_t *);
void wasmtime_global_get(wasmtime_context_t *, const wasmtime_global_t *, wasmtime_val_t *);
wasmtime_error_t *wasmtime_global_set(wasmtime_context_t *, const wasmtime_global_t *, const wasmtime_val_t *);
bool wasmtime_table_get(wasmtime_context_t *, const wasmtime_table_t *, uint64_t, wasmtime_val_t *);
wasmtime_error_t *wasmtime_func_call_unchecked(wasmtime_context_t *, const wasmtime_func_t *,
	wasmtime_val_raw_t *, size_t, wasm_trap_t **);
wasm_functype_t *wasmtime_func_type(const wasmtime_context_t *, const wasmtime_func_t *);
wasm_trap_t *wasmtime_trap_new(const char *, size_t);
bool wasmtime_trap_code(const wasm_trap_t *, uint8_t *);
void wasm_trap_delete(wasm_trap_t *);
wasm_functype_t *wasm_functype_new(wasm_valtype_vec_t *, wasm_valtype_vec_t *);
void wasm_functype_delete(wasm_functype_t *);
const wasm_valtype_vec_t *wasm_functype_params(const wasm_functype_t *);
const wasm_valtype_vec_t *wasm_functype_results(const wasm_functype_t *);
wasm_valtype_t *wasm_valtype_new(uint8_t);
uint8_t wasm_valtype_kind(const wasm_valtype_t *);
void wasm_valtype_vec_new(wasm_valtype_vec_t *, size_t, wasm_valtype_t *const[]);
void wasm_valtype_vec_new_empty(wasm_valtype_vec_t *);

// Implemented in Go (engine_wasmtime_export.go).
extern void *aonodeWasmtimeHost(void *data, void *env, void *args, size_t n);

// aon_host is every host function's callback: the store's data (the vm's
// handle) and env (the import's index) go to Go.
static wasm_trap_t *aon_host(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
	void *data = wasmtime_context_get_data(wasmtime_caller_context(caller));
	return (wasm_trap_t *)aonodeWasmtimeHost(data, env, args, n);
}

static wasm_valtype_vec_t aon_types(const uint8_t *kinds, size_t n) {
	wasm_valtype_vec_t v;
	if (n == 0) {
		wasm_valtype_vec_new_empty(&v);
		return v;
	}
	wasm_valtype_t *ts[32];
	for (size_t i = 0; i < n && i < 32; i++) ts[i] = wasm_valtype_new(kinds[i]);
	wasm_valtype_vec_new(&v, n, ts);
	return v;
}

static wasmtime_error_t *aon_define(wasmtime_linker_t *l, _GoString_ mod, _GoString_ name,
		const uint8_t *params, size_t np, const uint8_t *results, size_t nr, uintptr_t env) {
	wasm_valtype_vec_t p = aon_types(params, np), r = aon_types(results, nr);
	wasm_functype_t *ty = wasm_functype_new(&p, &r);
	wasmtime_error_t *err = wasmtime_linker_define_func_unchecked(l, _GoStringPtr(mod), _GoStringLen(mod),
		_GoStringPtr(name), _GoStringLen(name), ty, aon_host, (void *)env, NULL);
	wasm_functype_delete(ty);
	return err;
}

static int aon_same(const wasm_valtype_vec_t *v, const uint8_t *kinds, size_t n) {
	if (v->size != n) return 0;
	for (size_t i = 0; i < n; i++) {
		if (wasm_valtype_kind(v->data[i]) != kinds[i]) return 0;
	}
	return 1;
}

// aon_table_func looks up table entry idx: 0 found, 1 out of range or
// null, 2 of another type.
static int aon_table_func(wasmtime_context_t *cx, const wasmtime_table_t *t, uint64_t idx,
		const uint8_t *params, size_t np, const uint8_t *results, size_t nr, wasmtime_func_t *out) {
	wasmtime_val_t v;
	if (!wasmtime_table_get(cx, t, idx, &v) || v.kind != 5 || v.of.funcref.store_id == 0) return 1;
	wasm_functype_t *ty = wasmtime_func_type(cx, &v.of.funcref);
	int ok = aon_same(wasm_functype_params(ty), params, np) && aon_same(wasm_functype_results(ty), results, nr);
	wasm_functype_delete(ty);
	if (!ok) return 2;
	*out = v.of.funcref;
	return 0;
}

static wasm_trap_t *aon_host_trap(void) {
	static const char msg[] = "host function panicked";
	return wasmtime_trap_new(msg, sizeof msg - 1);
}

static uint64_t aon_global_get(wasmtime_context_t *cx, const wasmtime_global_t *g) {
	wasmtime_val_t v;
	wasmtime_global_get(cx, g, &v);
	if (v.kind == 0) return (uint64_t)(uint32_t)v.of.i32;
	return (uint64_t)v.of.i64;
}

static wasmtime_error_t *aon_global_set(wasmtime_context_t *cx, const wasmtime_global_t *g, int is64, uint64_t x) {
	wasmtime_val_t v;
	if (is64) {
		v.kind = 1;
		v.of.i64 = (int64_t)x;
	} else {
		v.kind = 0;
		v.of.i32 = (int32_t)(uint32_t)x;
	}
	return wasmtime_global_set(cx, g, &v);
}

static wasmtime_store_t *aon_store_new(wasm_engine_t *e, uintptr_t data) {
	return wasmtime_store_new(e, (void *)data, NULL);
}

static bool aon_export(wasmtime_context_t *cx, const wasmtime_instance_t *inst, _GoString_ name, uint8_t kind, wasmtime_extern_t *out) {
	return wasmtime_instance_export_get(cx, inst, _GoStringPtr(name), _GoStringLen(name), out) && out->kind == kind;
}
*/
import "C"

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/cgo"
	"sync"
	"unsafe"

	"github.com/aonode/aonode/cu/wasm/wasmbin"
	_ "github.com/bytecodealliance/wasmtime-go/v37" // links libwasmtime.a
	"github.com/tetratelabs/wazero/api"
)

// wasmtimeVersion names the library in the compilation cache: compiled code
// is only valid for the Wasmtime (and config) that produced it.
const wasmtimeVersion = "wasmtime-37.0.0-v1"

func init() { engines[EngineWasmtime] = &wasmtimeEngine{} }

type wasmtimeEngine struct {
	once sync.Once
	eng  *C.wasm_engine_t
}

// engine is the process-wide Wasmtime engine (code and signal handlers are
// shared by all modules).
func (e *wasmtimeEngine) engine() *C.wasm_engine_t {
	e.once.Do(func() {
		cfg := C.wasm_config_new()
		// Memories are plain anonymous mappings, zero where untouched, as
		// untouched() and copySparse assume (a copy-on-write image of the
		// data segments would be a file mapping).
		C.wasmtime_config_memory_init_cow_set(cfg, false)
		// Lua's C stack depth is bounded by LUAI_MAXCCALLS; leave room.
		C.wasmtime_config_max_wasm_stack_set(cfg, 4<<20)
		e.eng = C.wasm_engine_new_with_config(cfg)
	})
	return e.eng
}

// wtError turns a wasmtime_error_t into a Go error, deleting it.
func wtError(err *C.wasmtime_error_t) error {
	if err == nil {
		return nil
	}
	var msg C.wasm_byte_vec_t
	C.wasmtime_error_message(err, &msg)
	s := C.GoStringN(msg.data, C.int(msg.size))
	C.wasm_byte_vec_delete(&msg)
	C.wasmtime_error_delete(err)
	return errors.New(s)
}

type wasmtimeModule struct {
	e       *wasmtimeEngine
	mod     *C.wasmtime_module_t
	linker  *C.wasmtime_linker_t
	imports []importFunc
	exports map[string]funcType
	memory  map[string]memType
	impls   []hostFunc

	// live are the instances not yet closed: close releases them, as
	// wazero's Runtime.Close does (Module.Close waits for their calls).
	liveMu sync.Mutex
	live   map[*wasmtimeInstance]struct{}
}

func (e *wasmtimeEngine) compile(ctx context.Context, bin []byte, cacheDir string) (compiledModule, error) {
	wm, err := wasmbin.Decode(bin)
	if err != nil {
		return nil, &UnsupportedError{Kind: "binary", Reason: err.Error()}
	}
	m := &wasmtimeModule{e: e, exports: map[string]funcType{}, memory: map[string]memType{},
		live: map[*wasmtimeInstance]struct{}{}}
	if err := m.describe(wm); err != nil {
		return nil, &UnsupportedError{Kind: "binary", Reason: err.Error()}
	}
	eng := e.engine()
	sum := sha256.Sum256(bin)
	var path string
	if cacheDir != "" {
		path = filepath.Join(cacheDir, wasmtimeVersion, hex.EncodeToString(sum[:])+".cwasm")
		// The cache holds machine code, trusted as wazero's cache is: it
		// lives in the CU's own data directory. Wasmtime refuses code of
		// another version, configuration or CPU; the module is then
		// compiled again.
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			if wtError(C.wasmtime_module_deserialize(eng, (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b)), &m.mod)) != nil {
				m.mod = nil
			}
		}
	}
	if m.mod == nil {
		if len(bin) == 0 {
			return nil, &UnsupportedError{Kind: "binary", Reason: "empty"}
		}
		if err := wtError(C.wasmtime_module_new(eng, (*C.uint8_t)(unsafe.Pointer(&bin[0])), C.size_t(len(bin)), &m.mod)); err != nil {
			return nil, &UnsupportedError{Kind: "binary", Reason: err.Error()}
		}
		if path != "" {
			var out C.wasm_byte_vec_t
			if C.wasmtime_module_serialize(m.mod, &out) == nil {
				// Best effort, like the rewrite cache.
				_ = writeAtomic(path, C.GoBytes(unsafe.Pointer(out.data), C.int(out.size)))
				C.wasm_byte_vec_delete(&out)
			}
		}
	}
	m.linker = C.wasmtime_linker_new(eng)
	return m, nil
}

// describe reads the imports and exports off the decoded binary.
func (m *wasmtimeModule) describe(wm *wasmbin.Module) error {
	types := func(vs []wasmbin.ValType) []api.ValueType {
		out := make([]api.ValueType, len(vs))
		for i, v := range vs {
			out[i] = api.ValueType(v) // the same binary encoding
		}
		return out
	}
	var mems []wasmbin.Limits
	for _, im := range wm.Imports {
		switch im.Kind {
		case wasmbin.KindFunc:
			if int(im.Type) >= len(wm.Types) {
				return fmt.Errorf("import %s.%s: bad type index", im.Module, im.Name)
			}
			t := wm.Types[im.Type]
			m.imports = append(m.imports, importFunc{im.Module, im.Name, funcType{types(t.Params), types(t.Results)}})
		case wasmbin.KindMemory:
			mems = append(mems, im.Memory)
		}
	}
	mems = append(mems, wm.Memories...)
	for _, ex := range wm.Exports {
		switch ex.Kind {
		case wasmbin.KindFunc:
			t, err := wm.FuncType(ex.Index)
			if err != nil {
				return err
			}
			m.exports[ex.Name] = funcType{types(t.Params), types(t.Results)}
		case wasmbin.KindMemory:
			if int(ex.Index) >= len(mems) {
				return fmt.Errorf("export %s: bad memory index", ex.Name)
			}
			l := mems[ex.Index]
			m.memory[ex.Name] = memType{min: uint32(l.Min), max: uint32(l.Max), hasMax: l.HasMax()}
		}
	}
	return nil
}

func (m *wasmtimeModule) importedFunctions() []importFunc        { return m.imports }
func (m *wasmtimeModule) exportedFunctions() map[string]funcType { return m.exports }
func (m *wasmtimeModule) exportedMemory(name string) (memType, bool) {
	t, ok := m.memory[name]
	return t, ok
}

// kinds encodes value types as wasm_valkind_t.
func kinds(ts []api.ValueType) []byte {
	out := make([]byte, len(ts)+1) // never empty, for &out[0]
	for i, t := range ts {
		switch t {
		case api.ValueTypeI32:
			out[i] = 0
		case api.ValueTypeI64:
			out[i] = 1
		case api.ValueTypeF32:
			out[i] = 2
		case api.ValueTypeF64:
			out[i] = 3
		default:
			out[i] = 128
		}
	}
	return out
}

func (m *wasmtimeModule) link(_ context.Context, impls []hostFunc) error {
	m.impls = impls
	for i, d := range m.imports {
		p, r := kinds(d.params), kinds(d.results)
		err := wtError(C.aon_define(m.linker, d.module, d.name,
			(*C.uint8_t)(&p[0]), C.size_t(len(d.params)), (*C.uint8_t)(&r[0]), C.size_t(len(d.results)), C.uintptr_t(i)))
		if err != nil {
			return fmt.Errorf("wasm: define %s.%s: %w", d.module, d.name, err)
		}
	}
	return nil
}

func (m *wasmtimeModule) close(ctx context.Context) error {
	m.liveMu.Lock()
	live := m.live
	m.live = map[*wasmtimeInstance]struct{}{}
	m.liveMu.Unlock()
	for in := range live {
		in.close(ctx)
	}
	if m.linker != nil {
		C.wasmtime_linker_delete(m.linker)
		m.linker = nil
	}
	if m.mod != nil {
		C.wasmtime_module_delete(m.mod)
		m.mod = nil
	}
	return nil
}

// wasmtimeInstance is an instance in a store of its own.
type wasmtimeInstance struct {
	m      *wasmtimeModule
	v      *vm
	handle cgo.Handle // the store's data: v, for the host functions
	store  *C.wasmtime_store_t
	cx     *C.wasmtime_context_t
	inst   C.wasmtime_instance_t
	mem    *wasmtimeMemory
	table  *C.wasmtime_table_t // the exported __indirect_function_table
	closed bool

	ctx   context.Context // of the outermost call under way
	depth int             // calls under way (host functions calling back in)
	// panicked is what a host function panicked with, carried over the
	// wasm frames (as a trap) to the call that entered them.
	panicked any
	// Argument buffers of calls and host functions, one per nesting level:
	// C.wasmtime_val_raw_t arrays for wasm calls, Go stacks for host calls.
	raws   [][]C.wasmtime_val_raw_t
	stacks [][]uint64
	hdepth int
}

func (m *wasmtimeModule) instantiate(ctx context.Context, v *vm) (instance, error) {
	in := &wasmtimeInstance{m: m, v: v, ctx: ctx}
	in.handle = cgo.NewHandle(in)
	in.store = C.aon_store_new(m.e.engine(), C.uintptr_t(in.handle))
	in.cx = C.wasmtime_store_context(in.store)
	m.liveMu.Lock()
	m.live[in] = struct{}{}
	m.liveMu.Unlock()
	C.wasmtime_store_limiter(in.store, C.int64_t(uint64(v.limitPages)*65536), -1, -1, -1, -1)
	var trap *C.wasm_trap_t
	in.depth++
	err := C.wasmtime_linker_instantiate(m.linker, in.cx, m.mod, &in.inst, &trap)
	in.depth--
	if e := in.failure(err, trap); e != nil {
		in.close(ctx)
		return nil, e
	}
	var ex C.wasmtime_extern_t
	if !C.aon_export(in.cx, &in.inst, "memory", 3, &ex) {
		in.close(ctx)
		return nil, errors.New("no exported memory")
	}
	in.mem = &wasmtimeMemory{in: in, mem: *(*C.wasmtime_memory_t)(unsafe.Pointer(&ex.of))}
	// Huge pages for the whole reservation, as for wazero's memories
	// (memory_unix.go): the aos heap is walked all over by Lua's collector.
	if b := in.mem.bytes(); len(b) > 0 {
		adviseHuge(unsafe.Slice(&b[0], uint64(v.limitPages)*65536))
	}
	return in, nil
}

// failure turns the outcome of a call into wasm into an error: a host
// function's panic, a trap or an error.
func (in *wasmtimeInstance) failure(err *C.wasmtime_error_t, trap *C.wasm_trap_t) error {
	in.mem.invalidate()
	if p := in.panicked; p != nil && (trap != nil || err != nil) {
		in.panicked = nil
		if trap != nil {
			C.wasm_trap_delete(trap)
		}
		if err != nil {
			C.wasmtime_error_delete(err)
		}
		return recovered(p)
	}
	if trap != nil {
		var code C.uint8_t
		ok := C.wasmtime_trap_code(trap, &code)
		C.wasm_trap_delete(trap)
		msg := "trap"
		if ok {
			msg = wasmtimeTraps[uint8(code)]
		}
		return &wasmTrap{msg}
	}
	return wtError(err)
}

// wasmtimeTraps are wazero's messages for Wasmtime's trap codes, so that a
// trap reads the same on both engines (and maps to V8's through v8Traps).
var wasmtimeTraps = map[uint8]string{
	0:  "stack overflow",
	1:  "out of bounds memory access",
	2:  "unaligned atomic",
	3:  "invalid table access",
	4:  "invalid table access",
	5:  "indirect call type mismatch",
	6:  "integer overflow",
	7:  "integer divide by zero",
	8:  "invalid conversion to integer",
	9:  "unreachable",
	10: "interrupted",
}

// wasmTrap is a trap in wazero's words ("wasm error: …").
type wasmTrap struct{ msg string }

func (e *wasmTrap) Error() string { return "wasm error: " + e.msg + "\nwasm stack trace:" }

// recovered is wazero's error for a host function's panic (see
// wasmdebug.FromRecovered), so that results quoting it agree.
func recovered(p any) error {
	if e, ok := p.(*wasmTrap); ok {
		return e
	}
	if e, ok := p.(error); ok {
		return fmt.Errorf("%w (recovered by wazero)\nwasm stack trace:", e)
	}
	return fmt.Errorf("%v (recovered by wazero)\nwasm stack trace:", p)
}

func (in *wasmtimeInstance) memory() linearMemory { return in.mem }

func (in *wasmtimeInstance) export(name string, kind uint8) (C.wasmtime_extern_t, bool) {
	var ex C.wasmtime_extern_t
	ok := bool(C.aon_export(in.cx, &in.inst, name, C.uint8_t(kind), &ex))
	return ex, ok
}

func (in *wasmtimeInstance) function(name string) function {
	ex, ok := in.export(name, 0)
	t, ok2 := in.m.exports[name]
	if !ok || !ok2 {
		return nil
	}
	return &wasmtimeFunc{in: in, f: *(*C.wasmtime_func_t)(unsafe.Pointer(&ex.of)), t: t}
}

func (in *wasmtimeInstance) global(name string) global {
	ex, ok := in.export(name, 1)
	if !ok {
		return nil
	}
	g := &wasmtimeGlobal{in: in, g: *(*C.wasmtime_global_t)(unsafe.Pointer(&ex.of))}
	// A mutable global takes a set of its own value; an immutable one fails.
	cur := C.aon_global_get(in.cx, &g.g)
	for _, is64 := range []C.int{0, 1} {
		if wtError(C.aon_global_set(in.cx, &g.g, is64, cur)) == nil {
			g.is64 = is64
			return g
		}
	}
	return nil
}

func (in *wasmtimeInstance) tableFunc(idx uint32, params, results []api.ValueType) function {
	if in.table == nil {
		ex, ok := in.export("__indirect_function_table", 2)
		if !ok {
			panic(&wasmTrap{"invalid table access"})
		}
		in.table = &C.wasmtime_table_t{}
		*in.table = *(*C.wasmtime_table_t)(unsafe.Pointer(&ex.of))
	}
	p, r := kinds(params), kinds(results)
	var f C.wasmtime_func_t
	switch C.aon_table_func(in.cx, in.table, C.uint64_t(idx),
		(*C.uint8_t)(&p[0]), C.size_t(len(params)), (*C.uint8_t)(&r[0]), C.size_t(len(results)), &f) {
	case 1:
		panic(&wasmTrap{"invalid table access"})
	case 2:
		panic(&wasmTrap{"indirect call type mismatch"})
	}
	return &wasmtimeFunc{in: in, f: f, t: funcType{params, results}}
}

func (in *wasmtimeInstance) close(context.Context) error {
	in.m.liveMu.Lock()
	if in.closed {
		in.m.liveMu.Unlock()
		return nil
	}
	in.closed = true
	delete(in.m.live, in)
	in.m.liveMu.Unlock()
	C.wasmtime_store_delete(in.store)
	in.handle.Delete()
	return nil
}

// wasmtimeFunc calls a wasm function with raw values.
type wasmtimeFunc struct {
	in *wasmtimeInstance
	f  C.wasmtime_func_t
	t  funcType
}

func (f *wasmtimeFunc) CallWithStack(ctx context.Context, stack []uint64) error {
	in := f.in
	if in.closed {
		return errClosed
	}
	n := max(len(f.t.params), len(f.t.results), 1)
	if in.depth == 0 {
		in.ctx = ctx
	}
	for len(in.raws) <= in.depth {
		in.raws = append(in.raws, make([]C.wasmtime_val_raw_t, 16))
	}
	raw := in.raws[in.depth]
	if len(raw) < n {
		raw = make([]C.wasmtime_val_raw_t, n)
		in.raws[in.depth] = raw
	}
	for i, t := range f.t.params {
		setRaw(&raw[i], t, stack[i])
	}
	in.depth++
	var trap *C.wasm_trap_t
	err := C.wasmtime_func_call_unchecked(in.cx, &f.f, &raw[0], C.size_t(n), &trap)
	in.depth--
	if e := in.failure(err, trap); e != nil {
		return e
	}
	for i, t := range f.t.results {
		stack[i] = getRaw(&raw[i], t)
	}
	return nil
}

// getRaw reads a wasmtime_val_raw_t as a wazero stack value: an i32 zero-
// extended, an f32 or f64 as its bits.
func getRaw(r *C.wasmtime_val_raw_t, t api.ValueType) uint64 {
	b := (*[8]byte)(unsafe.Pointer(r))
	switch t {
	case api.ValueTypeI32, api.ValueTypeF32:
		return uint64(binary.LittleEndian.Uint32(b[:4]))
	}
	return binary.LittleEndian.Uint64(b[:])
}

func setRaw(r *C.wasmtime_val_raw_t, t api.ValueType, v uint64) {
	b := (*[16]byte)(unsafe.Pointer(r))
	switch t {
	case api.ValueTypeI32, api.ValueTypeF32:
		binary.LittleEndian.PutUint64(b[:8], uint64(uint32(v)))
	default:
		binary.LittleEndian.PutUint64(b[:8], v)
	}
}

// host runs import idx for the instance whose handle is data: called by
// aon_host through aonodeWasmtimeHost. A panic of the host function becomes
// a trap, and comes out again at the call that entered wasm (failure).
func wasmtimeHost(data, env uintptr, args unsafe.Pointer, n int) (trap unsafe.Pointer) {
	in := cgo.Handle(data).Value().(*wasmtimeInstance)
	in.mem.invalidate()
	d := in.m.imports[env]
	impl := in.m.impls[env]
	raw := unsafe.Slice((*C.wasmtime_val_raw_t)(args), n)
	for len(in.stacks) <= in.hdepth {
		in.stacks = append(in.stacks, make([]uint64, 16))
	}
	stack := in.stacks[in.hdepth]
	if len(stack) < n {
		stack = make([]uint64, n)
		in.stacks[in.hdepth] = stack
	}
	stack = stack[:max(n, 1)]
	for i, t := range d.params {
		stack[i] = getRaw(&raw[i], t)
	}
	in.hdepth++
	defer func() {
		in.hdepth--
		if p := recover(); p != nil {
			in.panicked = p
			trap = unsafe.Pointer(C.aon_host_trap())
		}
	}()
	impl(in.ctx, in.v, stack)
	for i, t := range d.results {
		setRaw(&raw[i], t, stack[i])
	}
	return nil
}

// wasmtimeGlobal is an exported mutable i32 or i64 global.
type wasmtimeGlobal struct {
	in   *wasmtimeInstance
	g    C.wasmtime_global_t
	is64 C.int
}

func (g *wasmtimeGlobal) Get() uint64 { return uint64(C.aon_global_get(g.in.cx, &g.g)) }

func (g *wasmtimeGlobal) Set(v uint64) {
	if err := wtError(C.aon_global_set(g.in.cx, &g.g, g.is64, C.uint64_t(v))); err != nil {
		panic(err)
	}
}

// wasmtimeMemory is the instance's linear memory. Its base does not move
// (Wasmtime reserves the 4 GiB of a 32-bit memory up front); its size is
// read again after anything that may have grown it: a call into wasm, a
// host function's entry, Grow.
type wasmtimeMemory struct {
	in    *wasmtimeInstance
	mem   C.wasmtime_memory_t
	buf   []byte
	valid bool
}

func (m *wasmtimeMemory) invalidate() {
	if m != nil {
		m.valid = false
	}
}

func (m *wasmtimeMemory) bytes() []byte {
	if !m.valid {
		p := C.wasmtime_memory_data(m.in.cx, &m.mem)
		n := C.wasmtime_memory_data_size(m.in.cx, &m.mem)
		m.buf = unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
		m.valid = true
	}
	return m.buf
}

func (m *wasmtimeMemory) Size() uint32 { return uint32(len(m.bytes())) }

func (m *wasmtimeMemory) Grow(delta uint32) (uint32, bool) {
	var prev C.uint64_t
	m.valid = false
	if C.wasmtime_memory_grow(m.in.cx, &m.mem, C.uint64_t(delta), &prev) != nil {
		// The error (over the limit) is the answer, not a failure.
		return 0, false
	}
	return uint32(prev), true
}

func (m *wasmtimeMemory) span(off, n uint32) ([]byte, bool) {
	b := m.bytes()
	if uint64(off)+uint64(n) > uint64(len(b)) {
		return nil, false
	}
	return b[off : off+n : off+n], true
}

func (m *wasmtimeMemory) Read(off, n uint32) ([]byte, bool) { return m.span(off, n) }

func (m *wasmtimeMemory) Write(off uint32, v []byte) bool {
	b, ok := m.span(off, uint32(len(v)))
	if ok {
		copy(b, v)
	}
	return ok
}

func (m *wasmtimeMemory) WriteUint16Le(off uint32, v uint16) bool {
	b, ok := m.span(off, 2)
	if ok {
		binary.LittleEndian.PutUint16(b, v)
	}
	return ok
}

func (m *wasmtimeMemory) ReadUint32Le(off uint32) (uint32, bool) {
	b, ok := m.span(off, 4)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b), true
}

func (m *wasmtimeMemory) WriteUint32Le(off, v uint32) bool {
	b, ok := m.span(off, 4)
	if ok {
		binary.LittleEndian.PutUint32(b, v)
	}
	return ok
}

func (m *wasmtimeMemory) ReadUint64Le(off uint32) (uint64, bool) {
	b, ok := m.span(off, 8)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b), true
}

func (m *wasmtimeMemory) WriteUint64Le(off uint32, v uint64) bool {
	b, ok := m.span(off, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}
