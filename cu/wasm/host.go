package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/aonode/aonode/cu/wasm/meter"
	"github.com/tetratelabs/wazero/api"
)

// emscripten's WASI errno numbering.
const (
	errnoBADF     = 8
	errnoINVAL    = 28
	errnoNOENT    = 44
	errnoNOSYS    = 52
	errnoNOTTY    = 59
	errnoOVERFLOW = 61
	errnoRANGE    = 68
	errnoSPIPE    = 70
)

// Sentinels raised (panicked) by host functions and recognised on the way out.
var (
	errLongjmp  = errors.New("longjmp")
	errAbort    = errors.New("native code called abort()")
	errOutOfGas = errors.New("out of gas!")
)

type exitError struct{ code int32 }

func (e *exitError) Error() string { return fmt.Sprintf("Program terminated with exit(%d)", e.code) }

// hostFn builds the Go implementation of one import for the signature the
// module declares; nil means the signature is not one we know.
type hostFn func(d importFunc) hostFunc

func is(d interface {
	ParamTypes() []api.ValueType
	ResultTypes() []api.ValueType
}, params []api.ValueType, results ...api.ValueType) bool {
	return sameTypes(d.ParamTypes(), params) && sameTypes(d.ResultTypes(), results)
}

func i32s(n int) []api.ValueType {
	t := make([]api.ValueType, n)
	for i := range t {
		t[i] = i32
	}
	return t
}

// fixed wraps an implementation valid for exactly one signature: nparams
// i32 parameters.
func fixed(nparams int, results []api.ValueType, f hostFunc) hostFn {
	return func(d importFunc) hostFunc {
		if !is(d, i32s(nparams), results...) {
			return nil
		}
		return zext(d.ParamTypes(), f)
	}
}

// zext makes the i32 arguments of f zero-extended in its stack: wazero leaves
// the upper 32 bits of an i32 stack slot unspecified, and implementations
// shared by the wasm32 and wasm64 forms read pointer arguments as 64-bit
// values (ptr).
func zext(params []api.ValueType, f hostFunc) hostFunc {
	var idx []int
	for i, p := range params {
		if p == i32 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return f
	}
	return func(ctx context.Context, v *vm, stack []uint64) {
		for _, i := range idx {
			stack[i] = uint64(uint32(stack[i]))
		}
		f(ctx, v, stack)
	}
}

var (
	r0   []api.ValueType
	rI32 = []api.ValueType{i32}
)

func u32(v uint64) uint32 { return uint32(v) }

// ptr converts a pointer or length argument (i32, or i64 on wasm64) to a
// memory offset. Lowered wasm64 memories are below 4 GiB, so a larger value
// saturates to an offset every memory access rejects instead of wrapping
// onto valid memory.
func ptr(v uint64) uint32 {
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}
func s32(v uint64) int32 { return int32(uint32(v)) }
func ret(v int32) uint64 { return uint64(uint32(v)) }

// syscallErr imports answer -errno; every host file operation is refused.
func syscallErr(errno int32) hostFn {
	return func(d importFunc) hostFunc {
		if !sameTypes(d.ResultTypes(), rI32) {
			return nil
		}
		for _, p := range d.ParamTypes() {
			if p != i32 && p != api.ValueTypeI64 {
				return nil
			}
		}
		return func(_ context.Context, v *vm, stack []uint64) { stack[0] = ret(-errno) }
	}
}

func dateNow(d importFunc) hostFunc {
	if !is(d, nil, f64) {
		return nil
	}
	return func(ctx context.Context, v *vm, stack []uint64) {
		stack[0] = api.EncodeF64(v.now)
		v.now++
	}
}

func trap(err error) hostFn {
	return func(d importFunc) hostFunc {
		return func(context.Context, *vm, []uint64) { panic(err) }
	}
}

// imports maps import names (module "env" or "wasi_snapshot_preview1", which
// the glue serves from one object, and "metering") to implementations.
var imports = map[string]hostFn{
	"_emscripten_throw_longjmp": fixed(0, r0, func(context.Context, *vm, []uint64) { panic(errLongjmp) }),
	"emscripten_resize_heap":    either(fixed(1, rI32, resizeHeap), exact("j", "i", resizeHeap)),
	"_emscripten_memcpy_js":     either(fixed(3, r0, memmove), exact("jjj", "", memmove)),
	"emscripten_memcpy_big":     fixed(3, r0, memmove),
	"emscripten_date_now":       dateNow,
	"_emscripten_date_now":      dateNow,
	"emscripten_get_now":        dateNow,
	"_emscripten_get_now_is_monotonic": fixed(0, rI32, func(_ context.Context, v *vm, stack []uint64) {
		stack[0] = 1
	}),
	"emscripten_get_heap_max": either(
		fixed(0, rI32, func(ctx context.Context, v *vm, stack []uint64) {
			stack[0] = uint64(uint32(v.heapMax))
		}),
		exact("", "j", func(ctx context.Context, v *vm, stack []uint64) { stack[0] = v.heapMax })),
	"_tzset_js":     either(tzset, exact("jjjj", "", tzset64)),
	"_gmtime_js":    either(timeToTm(false), exact("jj", "", timeToTm64(false))),
	"_localtime_js": either(timeToTm(true), exact("jj", "", timeToTm64(true))),
	"_mktime_js":    either(fixed(1, rI32, mktimeJS), exact("j", "j", mktime64)),
	"strftime":      either(fixed(4, rI32, strftimeJS), exact("jjjj", "j", strftime64)),
	"strftime_l":    either(fixed(5, rI32, strftimeJS), exact("jjjjj", "j", strftime64)),

	"fd_write":          either(fixed(4, rI32, fdWrite), exact("ijjj", "i", fdWrite)),
	"fd_read":           either(fixed(4, rI32, fdRead), exact("ijjj", "i", fdRead)),
	"fd_close":          fixed(1, rI32, fdClose),
	"fd_seek":           either(fixed(5, rI32, fdSeek), exact("ijij", "i", fdSeek)),
	"fd_sync":           fixed(1, rI32, fdSync),
	"fd_fdstat_get":     either(fixed(2, rI32, fdFdstatGet), exact("ij", "i", fdFdstatGet)),
	"environ_sizes_get": either(fixed(2, rI32, environSizes), exact("jj", "i", environSizes)),
	"environ_get":       either(fixed(2, rI32, environGet), exact("jj", "i", environGet)),
	"__syscall_fcntl64": either(fixed(3, rI32, fcntl), exact("iij", "i", fcntl)),
	"__syscall_ioctl":   either(fixed(3, rI32, ioctl), exact("iij", "i", ioctl)),
	"__syscall_getcwd":  either(fixed(2, rI32, getcwd), exact("jj", "i", getcwd)),
	"_munmap_js":        exact("jjiiij", "i", munmap),

	// The process has no file system: fopen goes through WeaveDrive, and
	// everything that would touch a path or duplicate a descriptor fails.
	"__syscall_openat":      syscallErr(errnoNOENT),
	"__syscall_unlinkat":    syscallErr(errnoNOENT),
	"__syscall_rmdir":       syscallErr(errnoNOENT),
	"__syscall_renameat":    syscallErr(errnoNOENT),
	"__syscall_readlinkat":  syscallErr(errnoNOENT),
	"__syscall_lstat64":     syscallErr(errnoNOENT),
	"__syscall_stat64":      syscallErr(errnoNOENT),
	"__syscall_newfstatat":  syscallErr(errnoNOENT),
	"__syscall_faccessat":   syscallErr(errnoNOENT),
	"__syscall_mkdirat":     syscallErr(errnoNOENT),
	"__syscall_chmod":       syscallErr(errnoNOENT),
	"__syscall_utimensat":   syscallErr(errnoNOENT),
	"__syscall_fstat64":     syscallErr(errnoBADF),
	"__syscall_fchmod":      syscallErr(errnoBADF),
	"__syscall_fchown32":    syscallErr(errnoBADF),
	"__syscall_ftruncate64": syscallErr(errnoBADF),
	"__syscall_dup3":        syscallErr(errnoNOSYS),

	// system(3): the reference glue spawns a real shell here (runtime.md §6).
	// We answer "no shell" for NULL and ENOSYS otherwise, without looking at
	// the command.
	"_emscripten_system": either(fixed(1, rI32, system), exact("j", "i", system)),
	"system":             fixed(1, rI32, system),

	"exit": fixed(1, r0, func(_ context.Context, v *vm, stack []uint64) {
		panic(&exitError{s32(stack[0])})
	}),
	"_abort_js":     trap(errAbort),
	"abort":         trap(errAbort),
	"__assert_fail": trap(errors.New("assertion failed")),

	"__asyncjs__weavedrive_open":  either(fixed(2, rI32, driveOpen), exact("jj", "i", driveOpen)),
	"__asyncjs__weavedrive_read":  either(fixed(3, rI32, driveRead), exact("ijj", "i", driveRead)),
	"__asyncjs__weavedrive_close": fixed(1, rI32, driveClose),

	"metering_gasUsed": fixed(0, rI32, func(ctx context.Context, v *vm, stack []uint64) {
		used := v.gasUsed
		if v.gasUsedG != nil {
			used = v.gasUsedG.Get()
		}
		stack[0] = uint64(uint32(used))
	}),
	// metering.usegas(n) (pre-metered binaries, and the -metering formats
	// metered at load time with an i32 or, on wasm64, an i64 meter): the
	// glue's gas.use(n), then "out of gas!" once used > limit, before the
	// metered code runs. The costs are small positive constants, so the JS
	// number arithmetic of the reference is exact here.
	"usegas": either(fixed(1, r0, func(ctx context.Context, v *vm, stack []uint64) {
		useGas(v, uint64(int64(s32(stack[0])))) // the JS glue reads an i32 as signed
	}), exact("j", "", func(ctx context.Context, v *vm, stack []uint64) {
		useGas(v, stack[0])
	})),
	"getTempRet0": fixed(0, rI32, func(ctx context.Context, v *vm, stack []uint64) {
		stack[0] = ret(v.tempRet)
	}),
	"setTempRet0": fixed(1, r0, func(ctx context.Context, v *vm, stack []uint64) {
		v.tempRet = s32(stack[0])
	}),
}

// useGas is gas.use(n) of the glue, as meter.InlineGas also does it in wasm.
func useGas(v *vm, n uint64) {
	v.gasUsed += n
	if int64(v.gasUsed) > int64(v.gasLimit) {
		panic(errOutOfGas)
	}
}

// fuelQuantum is the fuel given per refill: tens of microseconds of aos
// work (an aos Ping burns about 220e6, some 50 refills), so a deadline stops
// a runaway message at once, while a refill (a host call, on Wasmtime a cgo
// callback) costs nothing measurable: 2^22, 2^24 and 2^26 gave the same CPU
// time per Ping on both engines.
const fuelQuantum = 1 << 22

// fuelFor is the fuel a call under ctx starts with and gets per refill: a
// ctx that can never be done needs no checks.
func fuelFor(ctx context.Context) uint64 {
	if ctx.Done() == nil {
		return math.MaxInt64
	}
	return fuelQuantum
}

// ErrFuelExhausted is the Error of a message that burnt its whole
// Config.FuelLimit (the limit follows in parentheses).
var ErrFuelExhausted = errors.New("Evaluation exceeded the CU's compute limit: fuel exhausted")

type yieldKey struct{}

// yieldError carries the error of a WithYield hook out of the wasm call.
type yieldError struct{ err error }

func (e *yieldError) Error() string { return e.err.Error() }
func (e *yieldError) Unwrap() error { return e.err }

// WithYield returns a ctx under which a running message calls yield between
// slices of its work (every fuelQuantum units of fuel, a few milliseconds).
// yield may block, to let other evaluations run first, and its error aborts
// the message as a cancelled ctx does. The result does not depend on it.
func WithYield(ctx context.Context, yield func() error) context.Context {
	return context.WithValue(ctx, yieldKey{}, yield)
}

// outOfFuel is the meter.FuelImportName import: the process used up its
// fuel. Continue with more unless the ctx is done or the message burnt its
// Config.FuelLimit; then abort the call, like the other host aborts, by
// panicking (evaluate maps it to ctx.Err() or ErrFuelExhausted).
func outOfFuel(d importFunc) hostFunc {
	if !is(d, []api.ValueType{api.ValueTypeI64}, api.ValueTypeI64) {
		return nil
	}
	return func(ctx context.Context, v *vm, stack []uint64) {
		if err := ctx.Err(); err != nil {
			panic(err)
		}
		if y, ok := ctx.Value(yieldKey{}).(func() error); ok {
			if err := y(); err != nil {
				panic(&yieldError{err})
			}
		}
		if v == nil || v.fuelLimit == 0 {
			stack[0] = fuelFor(ctx)
			return
		}
		// Fuel left is <= 0 here: the grant was burnt, and a little more.
		v.fuelSpent += uint64(v.fuelGrant - int64(stack[0]))
		if v.fuelSpent >= v.fuelLimit {
			panic(ErrFuelExhausted)
		}
		v.fuelGrant = int64(min(fuelQuantum, v.fuelLimit-v.fuelSpent))
		stack[0] = uint64(v.fuelGrant)
	}
}

// buildHost links, for every function the module imports, an
// implementation with exactly the declared signature.
func (m *Module) buildHost(ctx context.Context) error {
	imps := m.compiled.importedFunctions()
	impls := make([]hostFunc, len(imps))
	for i, d := range imps {
		modName, name := d.module, d.name
		switch modName {
		case "env", "wasi_snapshot_preview1", "metering":
		case meter.FuelImportModule:
			if !m.fuel || name != meter.FuelImportName {
				return &UnsupportedError{Kind: "import", Value: modName + "." + name}
			}
		default:
			return &UnsupportedError{Kind: "import", Value: modName + "." + name}
		}
		var impl hostFunc
		if modName == meter.FuelImportModule {
			impl = outOfFuel(d)
		} else if strings.HasPrefix(name, "invoke_") {
			impl = m.invoke(d)
		} else if mk, ok := imports[name]; ok {
			impl = mk(d)
		} else {
			return &UnsupportedError{Kind: "import", Value: modName + "." + name}
		}
		if impl == nil {
			return &UnsupportedError{Kind: "import", Value: modName + "." + name,
				Reason: fmt.Sprintf("unexpected signature %v -> %v", d.ParamTypes(), d.ResultTypes())}
		}
		impls[i] = impl
	}
	return m.compiled.link(ctx, impls)
}

// invoke implements the invoke_<sig>(index, args...) trampolines through
// which emscripten (without wasm exceptions) runs code that may longjmp:
// call table[index](args); if it longjmps, restore the stack pointer saved
// before the call, record the throw with setThrew(1, 0) and return zeros.
// Lua's error/pcall and coroutine yields go through here.
//
// The glue makes the call through the module's export dynCall_<sig>(index,
// args...) (the wasm64 glue passes Number(index)), which call_indirects the
// entry. When m.dynCall is set and the module has that export, so do we: on
// the -metering formats that export is metered (and Asyncify-instrumented),
// so GasUsed matches the reference only this way.
func (m *Module) invoke(d importFunc) hostFunc {
	params := d.ParamTypes()
	if len(params) == 0 || params[0] != i32 && params[0] != api.ValueTypeI64 {
		return nil
	}
	fparams := append([]api.ValueType(nil), params[1:]...)
	results := append([]api.ValueType(nil), d.ResultTypes()...)
	n := max(len(fparams), len(results))
	_, name, _ := d.Import()
	dyn := "dynCall_" + strings.TrimPrefix(name, "invoke_")
	if dd, ok := m.sigs[dyn]; !m.dynCall || !ok ||
		len(dd.ParamTypes()) != len(params) ||
		(dd.ParamTypes()[0] != i32 && dd.ParamTypes()[0] != api.ValueTypeI64) ||
		!sameTypes(dd.ParamTypes()[1:], fparams) || !sameTypes(dd.ResultTypes(), results) {
		dyn = ""
	}
	if dyn != "" {
		idx32 := m.sigs[dyn].ParamTypes()[0] == i32
		return func(ctx context.Context, v *vm, stack []uint64) {
			sp := v.stackSave(ctx)
			f := v.exportFunc(dyn)
			buf := make([]uint64, max(1+len(fparams), len(results)))
			copy(buf, stack[:1+len(fparams)])
			if idx32 {
				buf[0] = uint64(uint32(buf[0]))
			}
			err := f.CallWithStack(ctx, buf)
			v.putExportFunc(dyn, f)
			v.invoked(ctx, err, sp, stack, buf, len(results))
		}
	}
	return func(ctx context.Context, v *vm, stack []uint64) {
		idx := u32(stack[0])
		sp := v.stackSave(ctx)
		f := v.tableFunc(idx, fparams, results)
		buf := make([]uint64, n)
		copy(buf, stack[1:1+len(fparams)])
		err := f.CallWithStack(ctx, buf)
		v.putTableFunc(idx, f)
		v.invoked(ctx, err, sp, stack, buf, len(results))
	}
}

// invoked finishes an invoke_<sig> call: copy the results, or handle a
// longjmp out of the callee like the glue's catch block.
func (v *vm) invoked(ctx context.Context, err error, sp uint64, stack, buf []uint64, nresults int) {
	if err != nil {
		if !errors.Is(err, errLongjmp) {
			panic(err)
		}
		v.stackRestore(ctx, sp)
		v.call(ctx, v.setThrew, 1, 0)
		clear(stack[:nresults])
		return
	}
	copy(stack[:nresults], buf[:nresults])
}

// exportFunc returns a callable for an exported function; like tableFunc it
// keeps a free list, as nested invokes re-enter the same dynCall export.
func (v *vm) exportFunc(name string) function {
	if l := v.efuncs[name]; len(l) > 0 {
		f := l[len(l)-1]
		v.efuncs[name] = l[:len(l)-1]
		return f
	}
	return v.inst.function(name)
}

func (v *vm) putExportFunc(name string, f function) {
	v.efuncs[name] = append(v.efuncs[name], f)
}

// tableFunc returns a callable for table[idx]. A function must not be
// re-entered while running, and Lua nests protected calls through the same
// table entries, so we keep a small free list per entry.
func (v *vm) tableFunc(idx uint32, params, results []api.ValueType) function {
	if l := v.tfuncs[idx]; len(l) > 0 {
		f := l[len(l)-1]
		v.tfuncs[idx] = l[:len(l)-1]
		return f
	}
	return v.inst.tableFunc(idx, params, results)
}

func (v *vm) putTableFunc(idx uint32, f function) {
	v.tfuncs[idx] = append(v.tfuncs[idx], f)
}

func resizeHeap(ctx context.Context, v *vm, stack []uint64) {
	req := stack[0] // i32 (zero-extended) or i64
	stack[0] = 0
	if v.resizeHeap(req) {
		stack[0] = 1
	}
}

// memmove is the glue's HEAPU8.copyWithin(dest, src, src + n). copyWithin
// never throws: it clamps every index to the memory and copies what fits, so
// a copy past the end copies less instead of trapping. Programs such as Lua's
// buffer code then go on to report their own out-of-memory error, as they do
// under the reference loader. Indexes are non-negative (emscripten passes
// pointers as unsigned).
func memmove(ctx context.Context, v *vm, stack []uint64) {
	mem := v.mem
	size := uint64(mem.Size())
	clamp := func(v uint64) uint64 { return min(v, size) }
	dst, src := clamp(stack[0]), clamp(stack[1])
	end := stack[1] + stack[2]
	if end < stack[1] { // overflow: past any memory
		end = size
	}
	end = clamp(end)
	if end <= src || dst >= size {
		return
	}
	n := min(end-src, size-dst)
	buf, _ := mem.Read(0, uint32(size))
	copy(buf[dst:dst+n], buf[src:src+n])
}

func system(_ context.Context, v *vm, stack []uint64) {
	if stack[0] == 0 {
		stack[0] = 0 // "no command processor available"
		return
	}
	stack[0] = ret(-errnoNOSYS)
}

func environSizes(ctx context.Context, v *vm, stack []uint64) {
	// The glue's environment list is empty (its getEnvStrings returns []).
	mem := v.mem
	v.writeSize(mem, ptr(stack[0]), 0)
	v.writeSize(mem, ptr(stack[1]), 0)
	stack[0] = 0
}

func environGet(_ context.Context, v *vm, stack []uint64) { stack[0] = 0 }

// cString reads the NUL-terminated string at p (up to the end of memory).
func cString(mem linearMemory, p uint32) string {
	size := mem.Size()
	if p >= size {
		return ""
	}
	b, _ := mem.Read(p, size-p)
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func writeCString(mem linearMemory, p uint32, s string, max int) {
	b := append([]byte(s), 0)
	if len(b) > max {
		b = b[:max]
		b[max-1] = 0
	}
	mem.Write(p, b)
}

// tzset reports UTC: offset 0, no daylight saving time, zone names "UTC".
func tzset(d importFunc) hostFunc {
	switch {
	case is(d, i32s(4)): // (timezone*, daylight*, std_name*, dst_name*)
		return func(_ context.Context, v *vm, stack []uint64) {
			mem := v.mem
			mem.WriteUint32Le(u32(stack[0]), 0)
			mem.WriteUint32Le(u32(stack[1]), 0)
			writeCString(mem, u32(stack[2]), "UTC", 17)
			writeCString(mem, u32(stack[3]), "UTC", 17)
		}
	case is(d, i32s(3)): // emscripten2: (timezone*, daylight*, tzname*[2])
		return func(ctx context.Context, v *vm, stack []uint64) {
			mem := v.mem
			mem.WriteUint32Le(u32(stack[0]), 0)
			mem.WriteUint32Le(u32(stack[1]), 0)
			for i := uint32(0); i < 2; i++ {
				p := uint32(v.call(ctx, v.malloc, 4))
				writeCString(v.mem, p, "UTC", 4)
				v.mem.WriteUint32Le(u32(stack[2])+4*i, p)
			}
		}
	}
	return nil
}

func readTm(mem linearMemory, p uint32) tm {
	f := func(i uint32) int32 { x, _ := mem.ReadUint32Le(p + 4*i); return int32(x) }
	v := tm{sec: f(0), min: f(1), hour: f(2), mday: f(3), mon: f(4), year: f(5),
		wday: f(6), yday: f(7), isdst: f(8), gmtoff: f(9)}
	if z, _ := mem.ReadUint32Le(p + 40); z != 0 {
		v.zone = cString(mem, z)
	}
	return v
}

func writeTm(mem linearMemory, p uint32, v tm, n int) {
	fs := []int32{v.sec, v.min, v.hour, v.mday, v.mon, v.year, v.wday, v.yday, v.isdst, v.gmtoff}
	for i := 0; i < n; i++ {
		mem.WriteUint32Le(p+4*uint32(i), uint32(fs[i]))
	}
}

// timeToTm implements _gmtime_js/_localtime_js (local time is UTC). The
// wasm32 emscripten4 form passes time_t as (lo, hi); emscripten2 passes a
// pointer to it and the glue reads its low word.
func timeToTm(local bool) hostFn {
	// _gmtime_js writes tm_sec … tm_yday; _localtime_js also tm_isdst, tm_gmtoff.
	n := 8
	if local {
		n = 10
	}
	return func(d importFunc) hostFunc {
		switch {
		case is(d, i32s(3)):
			return func(_ context.Context, v *vm, stack []uint64) {
				t := int64(u32(stack[0])) | int64(s32(stack[1]))<<32
				if s32(stack[1]) < -(1<<21) || s32(stack[1]) >= 1<<21 {
					t = math.MaxInt64 // not an exact JS number: NaN fields
				}
				tv, _ := gmtime(t)
				writeTm(v.mem, u32(stack[2]), tv, n)
			}
		case is(d, i32s(2)):
			return func(_ context.Context, v *vm, stack []uint64) {
				lo, _ := v.mem.ReadUint32Le(u32(stack[0]))
				tv, _ := gmtime(int64(int32(lo)))
				writeTm(v.mem, u32(stack[1]), tv, n)
			}
		}
		return nil
	}
}

func mktimeJS(ctx context.Context, v *vm, stack []uint64) {
	mem := v.mem
	p := u32(stack[0])
	tv := readTm(mem, p)
	t := mktime(&tv)
	writeTm(mem, p, tv, 9)
	v.setTempRet(ctx, int32(t>>32))
	stack[0] = uint64(uint32(t))
}

func strftimeJS(_ context.Context, v *vm, stack []uint64) {
	mem := v.mem
	s, maxsize, format, tp := u32(stack[0]), u32(stack[1]), u32(stack[2]), u32(stack[3])
	tv := readTm(mem, tp)
	out := strftime(cString(mem, format), &tv)
	if uint64(len(out))+1 > uint64(maxsize) {
		stack[0] = 0
		return
	}
	mem.Write(s, append([]byte(out), 0))
	stack[0] = uint64(len(out))
}

// iovecs yields the (ptr, len) pairs of an iovec array: 8-byte entries of
// two u32 on wasm32, 16-byte entries of two u64 on wasm64.
func (v *vm) iovecs(mem linearMemory, iov uint32, n uint64, f func(p, l uint32) bool) {
	if v.m.ptr64 {
		for i := uint64(0); i < n; i++ {
			p, ok1 := mem.ReadUint64Le(iov + uint32(16*i))
			l, ok2 := mem.ReadUint64Le(iov + uint32(16*i) + 8)
			if !ok1 || !ok2 || !f(ptr(p), ptr(l)) {
				return
			}
		}
		return
	}
	for i := uint64(0); i < n; i++ {
		p, ok1 := mem.ReadUint32Le(iov + uint32(8*i))
		l, ok2 := mem.ReadUint32Le(iov + uint32(8*i) + 4)
		if !ok1 || !ok2 || !f(p, l) {
			return
		}
	}
}

// writeSize stores a size_t: 4 bytes on wasm32, 8 on wasm64.
func (v *vm) writeSize(mem linearMemory, p uint32, n uint64) {
	if v.m.ptr64 {
		mem.WriteUint64Le(p, n)
	} else {
		mem.WriteUint32Le(p, uint32(n))
	}
}

// fdWrite accepts and discards writes to stdout/stderr (the reference mutes
// console.log during handle); nothing reaches the host.
func fdWrite(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[0])
	if fd != 1 && fd != 2 {
		stack[0] = errnoBADF
		return
	}
	var total uint64
	mem := v.mem
	v.iovecs(mem, ptr(stack[1]), stack[2], func(_, l uint32) bool { total += uint64(l); return true })
	v.writeSize(mem, ptr(stack[3]), total)
	stack[0] = 0
}

func fdRead(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[0])
	mem := v.mem
	var total uint64
	if fd == 0 {
		v.writeSize(mem, ptr(stack[3]), 0) // stdin is empty
		stack[0] = 0
		return
	}
	f := v.files[fd]
	if f == nil {
		stack[0] = errnoBADF
		return
	}
	v.iovecs(mem, ptr(stack[1]), stack[2], func(p, l uint32) bool {
		buf, ok := mem.Read(p, l)
		if !ok {
			panic(errors.New("fd_read: buffer out of bounds"))
		}
		n, err := f.read(buf)
		if err != nil {
			panic(err)
		}
		total += uint64(n)
		return uint32(n) == l
	})
	v.writeSize(mem, ptr(stack[3]), total)
	stack[0] = 0
}

func fdClose(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[0])
	switch {
	case v.files[fd] != nil:
		delete(v.files, fd)
		stack[0] = 0
	case fd >= 0 && fd <= 2:
		stack[0] = 0
	default:
		stack[0] = errnoBADF
	}
}

func fdSeek(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[0])
	var off int64
	var whence int32
	var out uint32
	if v.m.ptr64 { // (fd, i64 offset, whence, i64 *newOffset)
		off, whence, out = int64(stack[1]), s32(stack[2]), ptr(stack[3])
		if off < -(1<<53) || off > 1<<53 {
			stack[0] = errnoOVERFLOW // the glue's bigintToI53Checked gives NaN
			return
		}
	} else { // (fd, offset lo, offset hi, whence, *newOffset)
		off = int64(u32(stack[1])) | int64(s32(stack[2]))<<32
		whence, out = s32(stack[3]), u32(stack[4])
	}
	f := v.files[fd]
	if f == nil {
		if fd >= 0 && fd <= 2 {
			stack[0] = errnoSPIPE
		} else {
			stack[0] = errnoBADF
		}
		return
	}
	var pos int64
	fromEnd := f.fromEnd // SEEK_CUR keeps it (see driveFile)
	switch whence {
	case 0:
		pos, fromEnd = off, false
	case 1:
		pos = f.pos + off
	case 2:
		pos, fromEnd = f.blob.Size()+off, true
	default:
		stack[0] = errnoINVAL
		return
	}
	if pos < 0 {
		stack[0] = errnoINVAL
		return
	}
	f.pos, f.fromEnd = pos, fromEnd
	v.mem.WriteUint64Le(out, uint64(pos))
	stack[0] = 0
}

func isStd(fd int32) bool { return fd >= 0 && fd <= 2 }

// fcntl answers the few commands musl's fdopen and stdio issue, for the
// standard streams and WeaveDrive files.
func fcntl(ctx context.Context, v *vm, stack []uint64) {
	fd, cmd, va := s32(stack[0]), s32(stack[1]), ptr(stack[2])
	if !isStd(fd) && v.files[fd] == nil {
		stack[0] = ret(-errnoBADF)
		return
	}
	switch cmd {
	case 1, 2, 4, 13, 14: // F_GETFD, F_SETFD, F_SETFL, F_SETLK(W)
		stack[0] = 0
	case 3: // F_GETFL: stdout/stderr write-only, everything else read-only
		if fd == 1 || fd == 2 {
			stack[0] = 1
		} else {
			stack[0] = 0
		}
	case 12: // F_GETLK: report F_UNLCK
		mem := v.mem
		p, _ := mem.ReadUint32Le(va)
		mem.WriteUint16Le(p, 2)
		stack[0] = 0
	default:
		stack[0] = ret(-errnoINVAL)
	}
}

// ioctl: the standard streams are terminals of 24x80 as in the emscripten
// TTY; drive files are not terminals.
func ioctl(ctx context.Context, v *vm, stack []uint64) {
	fd, op, va := s32(stack[0]), s32(stack[1]), ptr(stack[2])
	if !isStd(fd) {
		if v.files[fd] == nil {
			stack[0] = ret(-errnoBADF)
		} else {
			stack[0] = ret(-errnoNOTTY)
		}
		return
	}
	mem := v.mem
	switch op {
	case 21523: // TIOCGWINSZ
		p, _ := mem.ReadUint32Le(va)
		mem.WriteUint16Le(p, 24)
		mem.WriteUint16Le(p+2, 80)
		stack[0] = 0
	case 21519: // TIOCGPGRP
		p, _ := mem.ReadUint32Le(va)
		mem.WriteUint32Le(p, 0)
		stack[0] = 0
	case 21505, 21506, 21507, 21508, 21509, 21510, 21511, 21512:
		stack[0] = 0
	default:
		stack[0] = ret(-errnoINVAL)
	}
}

// The __asyncjs__ WeaveDrive imports are Asyncify imports in the reference:
// every call mallocs a 12-byte header plus ASYNCIFY_STACK_SIZE, unwinds the
// wasm call stack into it, runs the JavaScript, rewinds by calling handle
// again, and frees the buffer. That leaves traces in memory (a heap grown by
// ~40 MiB on first use, the unwound frames in the freed block), so we do the
// same unwind/rewind dance around our synchronous implementation to keep
// memory images byte-identical with the reference's.
const asyncifyStackSize = 41943040

func (v *vm) asyncImport(ctx context.Context, stack []uint64, work func() uint64) {
	if v.asyncStart == nil {
		stack[0] = work()
		return
	}
	if v.asyncRewinding {
		v.call(ctx, v.asyncStopRewind)
		v.call(ctx, v.free, uint64(v.asyncData))
		v.asyncRewinding, v.asyncData = false, 0
		stack[0] = v.asyncResult
		return
	}
	v.asyncResult = work()
	mem := v.mem
	var p uint32
	if v.m.ptr64 { // {u64 stack, u64 stack end, i32 rewind id}
		p = ptr(v.call(ctx, v.malloc, 24+asyncifyStackSize))
		mem.WriteUint64Le(p, uint64(p)+24)
		mem.WriteUint64Le(p+8, uint64(p)+24+asyncifyStackSize)
		mem.WriteUint32Le(p+16, 0)
	} else {
		p = uint32(v.call(ctx, v.malloc, 12+asyncifyStackSize))
		mem.WriteUint32Le(p, p+12)
		mem.WriteUint32Le(p+4, p+12+asyncifyStackSize)
		mem.WriteUint32Le(p+8, 0) // rewind id of "handle", the first export unwound
	}
	v.asyncData = p
	v.call(ctx, v.asyncStart, uint64(p))
	stack[0] = 0
}

func driveOpen(ctx context.Context, v *vm, stack []uint64) {
	v.asyncImport(ctx, stack, func() uint64 {
		mem := v.mem
		return ret(v.openDrive(ctx, cString(mem, ptr(stack[0])), cString(mem, ptr(stack[1]))))
	})
}

func driveRead(ctx context.Context, v *vm, stack []uint64) {
	fd, dst, n := s32(stack[0]), ptr(stack[1]), ptr(stack[2])
	v.asyncImport(ctx, stack, func() uint64 {
		f := v.files[fd]
		if f == nil {
			return 0
		}
		buf, ok := v.mem.Read(dst, n)
		if !ok {
			panic(errors.New("weavedrive_read: buffer out of bounds"))
		}
		r, err := f.read(buf)
		if err != nil {
			panic(err)
		}
		return uint64(uint32(r))
	})
}

func driveClose(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[0])
	v.asyncImport(ctx, stack, func() uint64 {
		delete(v.files, fd)
		return 0
	})
}

// detached is ctx for repairing an instance after a failed or cancelled
// message: never cancelled, and without the message's WithYield hook.
func detached(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), yieldKey{}, nil)
}
