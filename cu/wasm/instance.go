package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/aonode/aonode/cu/wasm/meter"
	"github.com/tetratelabs/wazero/sys"
)

// Config is what differs between processes sharing one Module.
type Config struct {
	// MemoryLimit (bytes) caps memory growth below the module's declared
	// maximum. 0 means the declared maximum, which is what the reference
	// host enforces (runtime.md §9.2); a smaller value diverges from it.
	MemoryLimit uint64
	// ComputeLimit is the gas limit per message (the Compute-Limit tag) for
	// the -metering formats and pre-metered binaries (metering.usegas); a
	// message that needs more fails with "out of gas!" and is rolled back.
	// Unmetered formats ignore it. 0 means 9e15, as in the reference.
	ComputeLimit uint64
	// Arweave serves WeaveDrive. It is used only when the module declares the
	// WeaveDrive extension; otherwise io.open of a drive path returns nil.
	Arweave Arweave
	// Revert, if set, sees each successful result; when it returns true the
	// result stands but the message's memory changes are undone as the
	// reference CU undoes an Output that ends in "not enough memory for
	// buffer allocation": the memory from before the message is written
	// over the start of the current one, keeping the instance (and any
	// memory the message grew).
	Revert func(*Result) bool
	// FuelLimit bounds the work of one message deterministically: the fuel
	// it may burn, counted by the static costs meter.AddFuel charges at every
	// function entry and loop header (each the instruction count of what it
	// covers, branches not taken included, so an interpreter loop costs its
	// whole body per iteration). A message that needs more fails with
	// ErrFuelExhausted as its Error, and its memory is rolled back: the same
	// result on every run, machine and load, unlike a wall-clock deadline.
	// 0 means no limit. Modules compiled Uninterruptible have no fuel and
	// ignore it.
	FuelLimit uint64
}

// Result is one handle() outcome in the reference loader's shape (without
// Memory). Fields are raw JSON as the process produced them; absent ones are
// empty and omitted when marshalled.
type Result struct {
	Output      json.RawMessage `json:"Output,omitempty"`
	Messages    json.RawMessage `json:"Messages,omitempty"`
	Spawns      json.RawMessage `json:"Spawns,omitempty"`
	Assignments json.RawMessage `json:"Assignments,omitempty"`
	Patches     json.RawMessage `json:"Patches"`
	// Error is set when the message failed: an aos {Error} response, an
	// uncaught Lua error (ok: false), a trap, exit, abort or out of gas. The
	// instance's memory is then what it was before the message.
	Error   json.RawMessage `json:"Error,omitempty"`
	GasUsed uint64          `json:"GasUsed"`
	// Fuel is the instruction fuel the message burnt (Config.FuelLimit
	// counts in it): deterministic, so CUs that meter a message by it agree.
	// Zero when the instance is uninterruptible.
	Fuel uint64 `json:"-"`
}

// Failed reports whether the message failed (and was rolled back).
func (r *Result) Failed() bool { return len(r.Error) > 0 }

// Instance is one running process. Its state is its linear memory, kept live
// between messages. Methods are serialised; use one Instance per process.
type Instance struct {
	m   *Module
	cfg Config

	mu     sync.Mutex
	vm     *vm
	closed bool

	// Rollback without copying memory per message: base is a memory image
	// (nil = freshly instantiated) and journal the messages evaluated
	// successfully since. A failed message rebuilds the previous state by
	// replaying the journal on base. The journal is folded into a new base
	// when it gets long, which bounds the replay time.
	base        []byte
	baseNow     float64
	img         *imageBuf // holds base, unless base came from Restore or RestoreOwned
	fork        bool      // made by Fork: no base, no journal
	journal     []entry
	journalSize int
	journalCost time.Duration
}

type entry struct {
	msg, env []byte
	drive    []driveOutcome
}

// Journal bounds: a rollback replays at most this much work.
const (
	journalMaxEntries = 1000
	journalMaxBytes   = 32 << 20
	journalMaxCost    = 2 * time.Second
)

// vm is one engine instance of the module plus the host state the glue
// keeps in JavaScript. Host functions are given it by the engine.
type vm struct {
	m          *Module
	inst       instance
	mem        linearMemory // inst.memory()
	heapMax    uint64
	limitPages uint32
	drive      Arweave

	handle, stackAlloc, stackRestoreFn, stackSaveFn, setThrew, tempretSet, malloc function
	asyncifyState, free                                                           function

	// Asyncify emulation for the WeaveDrive imports (see asyncImport).
	asyncStart, asyncStopUnwind, asyncStartRewind, asyncStopRewind function
	asyncData                                                      uint32
	fuel                                                           global // nil when uninterruptible
	fuelLimit                                                      uint64 // of the running handle call; 0: none
	fuelGrant                                                      int64  // fuel given at the last refill
	fuelSpent                                                      uint64 // fuel burnt before the last refill
	fuelUsed                                                       uint64 // fuel burnt by the last handle call
	cfgFuel                                                        uint64 // Config.FuelLimit
	asyncResult                                                    uint64
	asyncRewinding                                                 bool

	now         float64 // Date.now replacement: 10000, 10001, …
	tempRet     int32
	gasUsed     uint64
	gasLimit    uint64
	blockHeight int64
	files       map[int32]*driveFile
	record      *[]driveOutcome // live: drive answers of this message
	replay      *[]driveOutcome // rollback replay: answers to give back
	tfuncs      map[uint32][]function
	efuncs      map[string][]function

	// The gas counter and limit of a module metered by meter.InlineGas
	// (nil otherwise: gasUsed then counts in the host's usegas).
	gasUsedG, gasLimitG global
}

type vmKey struct{}

// Instantiate starts a new process instance with fresh memory. For the
// emscripten2/3 formats this runs main() (booting Lua) as the reference does.
func (m *Module) Instantiate(ctx context.Context, cfg Config) (*Instance, error) {
	return m.start(ctx, cfg, nil, nil)
}

// Restore starts an instance from a memory image taken by Snapshot (or a
// reference CU checkpoint: the same bytes). The image is copied.
func (m *Module) Restore(ctx context.Context, cfg Config, image []byte) (*Instance, error) {
	return m.start(ctx, cfg, bytes.Clone(image), nil)
}

// RestoreOwned is Restore without the copy: the instance takes image over
// (as its rollback base) and the caller must not use it afterwards. A
// restored aos image is 100 MB or more, so the copy is a good part of a cold
// start.
func (m *Module) RestoreOwned(ctx context.Context, cfg Config, image []byte) (*Instance, error) {
	return m.start(ctx, cfg, image, nil)
}

// startNow is where a new instance's Date.now counter starts, as the glue's.
const startNow = 10000

// Fork starts an instance holding a copy of from's current memory: what
// Restore of from's Snapshot gives, with one copy of the memory instead of
// three. It is for evaluating messages on the side (dry-runs), so it keeps no
// rollback base: a message that fails, or is not evaluated, closes it
// (returning its Result or error as Handle does). from must be an instance of
// m; it is locked while its memory is copied.
func (m *Module) Fork(ctx context.Context, cfg Config, from *Instance) (*Instance, error) {
	if from.m != m {
		return nil, errors.New("wasm: fork of an instance of another module")
	}
	from.mu.Lock()
	defer from.mu.Unlock()
	if from.closed {
		return nil, errors.New("wasm: instance is closed")
	}
	if !m.enter() {
		return nil, errClosed
	}
	defer m.leave()
	mem := from.vm.mem
	b, _ := mem.Read(0, mem.Size())
	v, err := m.newVM(ctx, cfg, b, true, startNow)
	if err != nil {
		return nil, err
	}
	return &Instance{m: m, cfg: cfg, vm: v, img: &imageBuf{}, fork: true}, nil
}

// start instantiates with image (nil: fresh memory) as the memory and the
// rollback base; img, if not nil, is the buffer holding image.
func (m *Module) start(ctx context.Context, cfg Config, image []byte, img *imageBuf) (*Instance, error) {
	if !m.enter() {
		return nil, errClosed
	}
	defer m.leave()
	in := &Instance{m: m, cfg: cfg, base: image, baseNow: startNow, img: img}
	if img == nil {
		in.img = &imageBuf{}
	}
	v, err := m.newVM(ctx, cfg, image, img != nil, in.baseNow)
	if err != nil {
		return nil, err
	}
	in.vm = v
	return in, nil
}

// newVM instantiates the module, loading image (nil: none) as its memory;
// ours says image is anonymous memory of this package's (see untouched).
func (m *Module) newVM(ctx context.Context, cfg Config, image []byte, ours bool, now float64) (*vm, error) {
	v := &vm{
		m:          m,
		heapMax:    m.format.heapMax,
		limitPages: m.maxPages,
		now:        now,
		gasLimit:   cfg.ComputeLimit,
		cfgFuel:    cfg.FuelLimit,
		files:      map[int32]*driveFile{},
		tfuncs:     map[uint32][]function{},
		efuncs:     map[string][]function{},
	}
	if v.gasLimit == 0 {
		v.gasLimit = defaultComputeLimit
	}
	if cfg.MemoryLimit > 0 {
		if p := cfg.MemoryLimit / 65536; p < uint64(v.limitPages) {
			v.limitPages = uint32(p)
		}
		if v.limitPages < m.minPages {
			return nil, fmt.Errorf("wasm: memory limit %d bytes is below the module's initial memory of %d bytes",
				cfg.MemoryLimit, uint64(m.minPages)*65536)
		}
	}
	if m.weaveDrive {
		v.drive = cfg.Arweave
	}
	ctx = context.WithValue(ctx, vmKey{}, v)
	inst, err := m.compiled.instantiate(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("wasm: instantiate: %w", err)
	}
	v.inst, v.mem = inst, inst.memory()
	ok := false
	defer func() {
		if !ok {
			inst.close(ctx)
		}
	}()
	pick := func(names ...string) function {
		for _, n := range names {
			if f := inst.function(n); f != nil {
				return f
			}
		}
		return nil
	}
	v.handle = pick("handle")
	v.stackAlloc = pick("_emscripten_stack_alloc", "stackAlloc")
	v.stackRestoreFn = pick("_emscripten_stack_restore", "stackRestore")
	v.stackSaveFn = pick("emscripten_stack_get_current", "stackSave")
	v.setThrew = pick("setThrew")
	v.tempretSet = pick("_emscripten_tempret_set")
	v.malloc = pick("malloc")
	v.asyncifyState = pick("asyncify_get_state")
	v.free = pick("free")
	if m.metered {
		u, l := inst.global(meter.GasUsedExport), inst.global(meter.GasLimitExport)
		if u == nil || l == nil {
			return nil, fmt.Errorf("wasm: instantiate: no gas globals")
		}
		v.gasUsedG, v.gasLimitG = u, l
		l.Set(v.gasLimit)
	}
	if m.fuel {
		g := inst.global(meter.FuelExport)
		if g == nil {
			return nil, fmt.Errorf("wasm: instantiate: no fuel global")
		}
		v.fuel = g
	}
	if v.asyncifyState != nil && v.malloc != nil && v.free != nil {
		v.asyncStart = pick("asyncify_start_unwind")
		v.asyncStopUnwind = pick("asyncify_stop_unwind")
		v.asyncStartRewind = pick("asyncify_start_rewind")
		v.asyncStopRewind = pick("asyncify_stop_rewind")
		if v.asyncStopUnwind == nil || v.asyncStartRewind == nil || v.asyncStopRewind == nil {
			v.asyncStart = nil
		}
	}

	// The glue's start-up order: stack init, stack cookie, constructors,
	// main for the older formats (runtime.md §7.1).
	if err := v.safeCall(ctx, func() {
		if f := pick("emscripten_stack_init"); f != nil {
			v.call(ctx, f)
		}
		v.writeStackCookie(ctx, pick("emscripten_stack_get_end"))
		if f := pick("__wasm_call_ctors"); f != nil {
			v.call(ctx, f)
		}
		if m.format.callsMain {
			v.call(ctx, pick("main"), 0, 0)
		}
	}); err != nil {
		return nil, fmt.Errorf("wasm: initialise: %w", err)
	}
	if image != nil {
		if err := v.load(image, ours); err != nil {
			return nil, err
		}
	}
	ok = true
	return v, nil
}

// writeStackCookie writes the same guard words as the (ASSERTIONS) glue, so
// memory images are byte-identical with the reference's.
func (v *vm) writeStackCookie(ctx context.Context, end function) {
	if end == nil {
		return
	}
	p := uint32(v.call(ctx, end))
	if p == 0 {
		p = 4
	}
	mem := v.mem
	mem.WriteUint32Le(p, 0x02135467)
	mem.WriteUint32Le(p+4, 0x89BACDFE)
	mem.WriteUint32Le(0, 0x63736d65)
}

// load copies a memory image over the start of memory, growing first as the
// reference does (resizeHeap to the image length). ours is newVM's.
func (v *vm) load(image []byte, ours bool) error {
	mem := v.mem
	if uint64(mem.Size()) < uint64(len(image)) && !v.resizeHeap(uint64(len(image))) {
		return fmt.Errorf("wasm: memory image of %d bytes exceeds the memory limit", len(image))
	}
	if uint64(mem.Size()) < uint64(len(image)) {
		return fmt.Errorf("wasm: memory image of %d bytes does not fit", len(image))
	}
	buf, _ := mem.Read(0, mem.Size())
	copySparse(buf, image, ours) // HEAPU8.set(image)
	return nil
}

// copySparse copies src to the start of dst, leaving alone the pages that
// are zero in both: a fresh memory or mapping is zero, and not touching those
// pages spares a page fault each and keeps them out of the process's resident
// memory (most of an aos memory is zero). Pages never touched are known zero
// without reading them (untouched), in dst always (a linear memory or an
// imageBuf), in src when srcOurs says it is anonymous memory too.
func copySparse(dst, src []byte, srcOurs bool) {
	const chunk = 4096
	dz := untouched(dst[:len(src)])
	var sz []bool
	if srcOurs {
		sz = untouched(src)
	}
	for i, off := 0, 0; off < len(src); i, off = i+1, off+chunk {
		s := src[off:min(off+chunk, len(src))]
		d := dst[off : off+len(s)]
		if sz != nil && sz[i] || allZero(s) {
			if !(dz != nil && dz[i]) && !allZero(d) {
				clear(d)
			}
			continue
		}
		copy(d, s)
	}
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// growTarget is emscripten's emscripten_resize_heap policy (over-grow by
// 20%, 10%, 5%, capped at +96 MiB, 64 KiB aligned), computed in float64 like
// the JS, returning the candidate sizes in the order they are tried.
func growTarget(old, req, heapMax uint64, cutDown int) uint64 {
	over := float64(old) * (1 + 0.2/float64(cutDown))
	over = math.Min(over, float64(req)+100663296)
	x := math.Max(float64(req), over)
	x = x + math.Mod(65536-math.Mod(x, 65536), 65536)
	x = math.Min(float64(heapMax), x)
	pages := math.Trunc((x - float64(old) + 65535) / 65536)
	return old + uint64(pages)*65536
}

func (v *vm) resizeHeap(req uint64) bool {
	mem := v.mem
	old := uint64(mem.Size())
	if req > v.heapMax {
		return false
	}
	for cut := 1; cut <= 4; cut *= 2 {
		size := growTarget(old, req, v.heapMax, cut)
		if size/65536 > uint64(v.limitPages) {
			continue
		}
		if _, ok := mem.Grow(uint32((size - old) / 65536)); ok {
			return true
		}
	}
	return false
}

func (v *vm) call(ctx context.Context, f function, args ...uint64) uint64 {
	buf := make([]uint64, max(len(args), 1))
	copy(buf, args)
	if err := f.CallWithStack(ctx, buf); err != nil {
		panic(err)
	}
	return buf[0]
}

func (v *vm) stackSave(ctx context.Context) uint64 { return v.call(ctx, v.stackSaveFn) }
func (v *vm) stackRestore(ctx context.Context, sp uint64) {
	v.call(ctx, v.stackRestoreFn, sp)
}

func (v *vm) setTempRet(ctx context.Context, hi int32) {
	if v.tempretSet != nil {
		v.call(ctx, v.tempretSet, uint64(uint32(hi)))
	} else {
		v.tempRet = hi
	}
}

// safeCall runs f, turning panics of host functions and errors of wasm calls
// into an error.
func (v *vm) safeCall(ctx context.Context, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	f()
	return nil
}

// handleRaw performs the loader's ccall: both strings NUL-terminated on the
// emscripten stack, handle(), copy the returned C string, restore the stack.
func (v *vm) handleRaw(ctx context.Context, msg, env []byte) (out []byte, err error) {
	ctx = context.WithValue(ctx, vmKey{}, v)
	v.gasUsed = 0
	if v.gasUsedG != nil {
		v.gasUsedG.Set(0)
		defer func() { v.gasUsed = v.gasUsedG.Get() }()
	}
	if v.fuel != nil {
		// Fuel left by an earlier call may be for a ctx without deadline.
		v.fuelLimit, v.fuelSpent = v.cfgFuel, 0
		v.fuelGrant = int64(fuelFor(ctx))
		if v.fuelLimit > 0 {
			v.fuelGrant = int64(min(fuelQuantum, v.fuelLimit))
		}
		v.fuel.Set(uint64(v.fuelGrant))
		defer func() {
			if v.fuelLimit > 0 {
				v.fuelUsed = v.fuelSpent + uint64(v.fuelGrant-int64(v.fuel.Get()))
			}
			v.fuelLimit = 0
		}()
	}
	err = v.safeCall(ctx, func() {
		sp := v.stackSave(ctx)
		mem := v.mem
		p1 := uint32(v.call(ctx, v.stackAlloc, uint64(len(msg)+1)))
		mem.Write(p1, msg)
		mem.Write(p1+uint32(len(msg)), nul)
		p2 := uint32(v.call(ctx, v.stackAlloc, uint64(len(env)+1)))
		mem.Write(p2, env)
		mem.Write(p2+uint32(len(env)), nul)
		r := uint32(v.call(ctx, v.handle, uint64(p1), uint64(p2)))
		for v.asyncData != 0 && !v.asyncRewinding {
			// An Asyncify import unwound the stack: resume like the glue does,
			// by rewinding into handle (called without arguments).
			v.call(ctx, v.asyncStopUnwind)
			v.asyncRewinding = true
			v.call(ctx, v.asyncStartRewind, uint64(v.asyncData))
			r = uint32(v.call(ctx, v.handle, 0, 0))
		}
		out = []byte(cString(v.mem, r))
		v.stackRestore(ctx, sp)
		// A sanity check of ours, not the glue's: asyncify_get_state is a
		// metered export on the -metering formats, so there it would add
		// to GasUsed.
		if v.asyncifyState != nil && !v.m.metered && v.call(ctx, v.asyncifyState) != 0 {
			panic(errors.New("asyncify state not normal after handle"))
		}
	})
	return out, err
}

var nul = []byte{0}

// evaluate runs one message and classifies the outcome: a Result (possibly
// failed, deterministic) or an error (host-side, not part of the process's
// history: deadline, cancellation, WeaveDrive I/O).
func (v *vm) evaluate(ctx context.Context, msg, env []byte) (*Result, error) {
	if v.drive != nil {
		v.blockHeight = blockHeightOf(msg)
	}
	v.fuelUsed = 0
	out, err := v.handleRaw(ctx, msg, env)
	r, err := v.classify(ctx, out, err)
	if r != nil {
		r.Fuel = v.fuelUsed
	}
	return r, err
}

// classify turns handleRaw's outcome into a Result or an error.
func (v *vm) classify(ctx context.Context, out []byte, err error) (*Result, error) {
	if err != nil {
		var de *driveError
		var ee *sys.ExitError
		var xe *exitError
		var ye *yieldError
		switch {
		case errors.As(err, &de):
			return nil, de
		case errors.As(err, &ye):
			return nil, fmt.Errorf("wasm: handle: %w", ye.err)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("wasm: handle: %w", ctx.Err())
		case errors.As(err, &ee):
			return nil, fmt.Errorf("wasm: handle: instance closed (exit code %d)", ee.ExitCode())
		case errors.As(err, &xe):
			return errorResult(xe.Error(), v.gasUsed), nil
		case errors.Is(err, ErrFuelExhausted):
			v.fuelUsed = v.cfgFuel // all of it, however far past the limit the last block ran
			return errorResult(fmt.Sprintf("%v (%d)", ErrFuelExhausted, v.cfgFuel), v.gasUsed), nil
		case errors.Is(err, errOutOfGas), v.gasUsedG != nil && v.gasUsed > v.gasLimit:
			// The host's usegas panics; the inlined one traps (unreachable).
			return errorResult(errOutOfGas.Error(), v.gasUsed), nil
		case errors.Is(err, errAbort):
			return errorResult("Aborted("+errAbort.Error()+")", v.gasUsed), nil
		}
		msg := err.Error()
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return errorResult(trapMessage(msg), v.gasUsed), nil
	}
	var top struct {
		OK       bool            `json:"ok"`
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(out, &top); err != nil {
		return errorResult("invalid handle output: "+err.Error(), v.gasUsed), nil
	}
	if !top.OK {
		r := &Result{Error: top.Response, GasUsed: v.gasUsed, Patches: emptyArray}
		if isNull(r.Error) {
			r.Error = json.RawMessage(`"null"`)
		}
		return r, nil
	}
	r := &Result{GasUsed: v.gasUsed}
	if err := json.Unmarshal(top.Response, r); err != nil {
		return errorResult("invalid handle response: "+err.Error(), v.gasUsed), nil
	}
	for _, f := range []*json.RawMessage{&r.Output, &r.Messages, &r.Spawns, &r.Assignments, &r.Error, &r.Patches} {
		if isNull(*f) {
			*f = nil
		}
	}
	if r.Patches == nil {
		r.Patches = emptyArray
	}
	return r, nil
}

var emptyArray = json.RawMessage(`[]`)

// v8Traps maps wazero's trap messages to V8's RuntimeError messages, which
// are what a process's Error says under the reference CU (node ao-loader):
// the same trap gives the same result on both. wazero reports a remainder
// by zero as a division by zero; V8's "remainder by zero" is not told apart.
var v8Traps = map[string]string{
	"out of bounds memory access":   "memory access out of bounds",
	"integer divide by zero":        "divide by zero",
	"integer overflow":              "divide result unrepresentable",
	"invalid conversion to integer": "float unrepresentable in integer range",
	"unreachable":                   "unreachable",
	"invalid table access":          "table index is out of bounds",
	"indirect call type mismatch":   "null function or function signature mismatch",
	"stack overflow":                "Maximum call stack size exceeded",
}

// trapMessage is V8's message for a wazero trap ("wasm error: …", perhaps
// with wazero's " (recovered by wazero)" suffix), else msg as it is.
func trapMessage(msg string) string {
	t, ok := strings.CutPrefix(msg, "wasm error: ")
	if !ok {
		return msg
	}
	if v8, ok := v8Traps[strings.TrimSpace(t)]; ok {
		return v8
	}
	return msg
}

func isNull(b json.RawMessage) bool { return len(b) == 0 || string(b) == "null" }

func errorResult(msg string, gas uint64) *Result {
	b, _ := json.Marshal(msg)
	return &Result{Error: b, GasUsed: gas, Patches: emptyArray}
}

func blockHeightOf(msg []byte) int64 {
	var m struct {
		H json.Number `json:"Block-Height"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return 0
	}
	h, err := m.H.Int64()
	if err != nil {
		f, _ := m.H.Float64()
		return int64(f)
	}
	return h
}

// Handle evaluates one message: msg and env are the JSON documents of
// units.md §5.6/§5.7, passed byte for byte to the process (give the bytes a
// reference CU would produce with JSON.stringify for identical memory).
//
// A failed message yields a Result with Error and leaves the memory as it was
// before the message, like the reference CU. A non-nil error means the
// message was not evaluated at all (ctx deadline or cancellation, a
// WeaveDrive backend failure, a closed instance); memory is rolled back too,
// and the caller decides whether to retry or record an error.
func (in *Instance) Handle(ctx context.Context, msg, env []byte) (*Result, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, errors.New("wasm: instance is closed")
	}
	if !in.m.enter() {
		return nil, errClosed
	}
	defer in.m.leave()
	start := time.Now()
	var drive []driveOutcome
	in.vm.record = &drive
	r, err := in.vm.evaluate(ctx, msg, env)
	in.vm.record = nil
	ok := err == nil && !r.Failed()
	revert := ok && in.cfg.Revert != nil && in.cfg.Revert(r)
	switch {
	case in.fork:
		if !ok || revert {
			in.shut(ctx) // no base to go back to
		}
		return r, err
	case revert:
		if rerr := in.revert(ctx); rerr != nil {
			in.shut(ctx)
			return nil, fmt.Errorf("wasm: revert: %w", rerr)
		}
		return r, nil
	case ok:
		in.record(msg, env, drive, time.Since(start))
		return r, nil
	}
	if rerr := in.rollback(ctx); rerr != nil {
		in.shut(ctx)
		return nil, fmt.Errorf("wasm: rollback after failed message: %w", rerr)
	}
	return r, err
}

func (in *Instance) record(msg, env []byte, drive []driveOutcome, cost time.Duration) {
	in.journal = append(in.journal, entry{bytes.Clone(msg), bytes.Clone(env), drive})
	in.journalSize += len(msg) + len(env)
	in.journalCost += cost
	if len(in.journal) >= journalMaxEntries || in.journalSize >= journalMaxBytes || in.journalCost >= journalMaxCost {
		in.rebase(in.vm)
	}
}

// rebase makes v's memory the new rollback base, with an empty journal.
func (in *Instance) rebase(v *vm) {
	mem := v.mem
	b, _ := mem.Read(0, mem.Size())
	in.base, in.baseNow = in.img.set(b, uint64(v.limitPages)*65536), v.now
	in.journal, in.journalSize, in.journalCost = nil, 0, 0
}

// rollback replaces the live instance by one holding the memory from before
// the failed message, exactly as the reference CU gets it: a fresh instance
// into which the previous memory image is written.
func (in *Instance) rollback(ctx context.Context) error {
	ctx = detached(ctx)
	in.vm.inst.close(ctx)
	v, err := in.replay(ctx)
	if err != nil {
		return err
	}
	if len(in.journal) > 0 {
		// The reference writes the previous image into a fresh instance; its
		// memory size then follows one resize from the initial size, which
		// can differ from the size reached by growing step by step.
		in.rebase(v)
		size := uint64(len(in.base))
		want := uint64(in.m.minPages) * 65536
		if want < size {
			want = growTarget(want, size, v.heapMax, 1)
		}
		if want != size {
			v.inst.close(ctx)
			if v, err = in.m.newVM(ctx, in.cfg, in.base, true, in.baseNow); err != nil {
				return err
			}
		}
		in.vm = v
		return nil
	}
	in.vm = v
	return nil
}

// replay builds a new vm in the state after the last successful message:
// the base image with the journal evaluated on it.
func (in *Instance) replay(ctx context.Context) (*vm, error) {
	v, err := in.m.newVM(ctx, in.cfg, in.base, in.img.holds(in.base), in.baseNow)
	if err != nil {
		return nil, err
	}
	for i, e := range in.journal {
		drive := e.drive
		v.replay = &drive
		r, err := v.evaluate(ctx, e.msg, e.env)
		v.replay = nil
		if err == nil && r.Failed() {
			err = fmt.Errorf("replayed message %d failed: %s", i, r.Error)
		}
		if err != nil {
			v.inst.close(ctx)
			return nil, err
		}
	}
	return v, nil
}

// revert undoes a message the way the reference CU does for Config.Revert:
// it keeps the instance and writes the memory from before the message over
// the start of the current memory (ao-loader's HEAPU8.set), so memory the
// message grew keeps what the message left there.
func (in *Instance) revert(ctx context.Context) error {
	ctx = detached(ctx)
	v, err := in.replay(ctx)
	if err != nil {
		return err
	}
	old, mem := v.mem, in.vm.mem
	prev, _ := old.Read(0, old.Size())
	cur, _ := mem.Read(0, mem.Size())
	ok := len(prev) <= len(cur)
	if ok {
		copySparse(cur, prev, true)
	}
	v.inst.close(ctx)
	if !ok {
		return fmt.Errorf("memory before the message (%d bytes) is larger than after it (%d bytes)", len(prev), len(cur))
	}
	// The tail is not reproducible from the journal: start a new base.
	in.rebase(in.vm)
	return nil
}

// Snapshot returns a copy of the process memory: the checkpoint format of the
// reference CU (hash it, gzip it). Module.Restore continues from it. It
// fails once the instance or its module is closed.
func (in *Instance) Snapshot() ([]byte, error) {
	var img []byte
	err := in.View(func(mem []byte, _ []bool) error {
		img = bytes.Clone(mem)
		return nil
	})
	return img, err
}

// View calls f with the process memory, as Snapshot would copy it, without
// the copy: mem is read-only and valid only during f, which holds the
// instance. untouched, when not nil, marks the 4 KiB pages of mem that are
// zero without reading them: most of an aos memory is, and reading them
// would make them resident (page i is mem[i*4096:]). View fails once the
// instance or its module is closed.
func (in *Instance) View(f func(mem []byte, untouched []bool) error) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return errors.New("wasm: instance is closed")
	}
	if !in.m.enter() {
		return errClosed
	}
	defer in.m.leave()
	// The view is of the rollback base, which is also a good moment to take.
	in.rebase(in.vm)
	return f(in.base, untouched(in.base))
}

// Live calls f with the live process memory: read-only, valid only during
// f, which holds the instance. Unlike View it takes no rollback base, so it
// costs nothing but f: what a digest of the memory after every message
// needs. untouched is as for View. Live fails once the instance or its
// module is closed.
func (in *Instance) Live(f func(mem []byte, untouched []bool) error) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return errors.New("wasm: instance is closed")
	}
	if !in.m.enter() {
		return errClosed
	}
	defer in.m.leave()
	b, _ := in.vm.mem.Read(0, in.vm.mem.Size())
	return f(b, untouched(b))
}

// MemorySize returns the current linear memory size in bytes.
func (in *Instance) MemorySize() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || !in.m.enter() {
		return 0
	}
	defer in.m.leave()
	return uint64(in.vm.mem.Size())
}

// Resident returns the bytes of memory the instance holds: the pages of its
// linear memory and of its rollback base that were ever touched (present or
// swapped out). Pages never touched cost nothing, so an aos process with a
// 105 MiB memory may hold a few MiB. Where that cannot be told (no
// /proc/self/pagemap) it is the full size of both.
func (in *Instance) Resident() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || !in.m.enter() {
		return 0
	}
	defer in.m.leave()
	mem, _ := in.vm.mem.Read(0, in.vm.mem.Size())
	n := touchedBytes(mem)
	if in.base != nil && in.img.holds(in.base) {
		// The buffer is reserved up to the memory limit; bases only grow.
		n += touchedBytes(in.img.buf[:len(in.base)])
	} else {
		n += uint64(len(in.base))
	}
	return n
}

// touchedBytes is the size of the pages of b that untouched does not
// report untouched (all of b when it cannot tell).
func touchedBytes(b []byte) uint64 {
	u := untouched(b)
	if u == nil {
		return uint64(len(b))
	}
	var n uint64
	for i, free := range u {
		if !free {
			n += uint64(min(4096, len(b)-4096*i))
		}
	}
	return n
}

// Close releases the instance.
func (in *Instance) Close(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	return in.shut(ctx)
}

// shut closes the instance (in.mu held).
func (in *Instance) shut(ctx context.Context) error {
	in.closed = true
	err := in.vm.inst.close(context.WithoutCancel(ctx))
	in.base, in.journal = nil, nil
	in.img.free()
	return err
}
