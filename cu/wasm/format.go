package wasm

import (
	"errors"
	"fmt"
)

// Module-Format tag values (runtime.md §2). The reference CU accepts exactly
// these seven; this runtime runs all but the minified wasm32-unknown-emscripten:
// the wasm32 emscripten 2/3/4 ones, wasm64 (lowered to a 32-bit memory, so
// processes stay under 4 GiB) and the two -metering formats (gas metered at
// load time exactly like the reference, runtime.md §9).
const (
	FormatEmscripten                = "wasm32-unknown-emscripten"
	FormatEmscripten2               = "wasm32-unknown-emscripten2"
	FormatEmscripten3               = "wasm32-unknown-emscripten3"
	FormatEmscripten4               = "wasm32-unknown-emscripten4"
	FormatWasm64                    = "wasm64-unknown-emscripten-draft_2024_02_15"
	FormatEmscriptenMetering        = "wasm32-unknown-emscripten-metering"
	FormatWasm64Metering            = "wasm64-unknown-emscripten-draft_2024_10_16-metering"
	ExtensionWeaveDrive             = "WeaveDrive"
	defaultComputeLimit      uint64 = 9e15 // glue default when no Compute-Limit is given
)

// format holds what differs between the glue generations that matter to a host.
type format struct {
	name string
	// heapMax is the glue's getHeapMax(); the module's declared memory max is
	// the real cap in practice (runtime.md §9.2).
	heapMax uint64
	// callsMain: the older glues boot Lua with main(0, 0) at instantiation;
	// emscripten4 boots lazily inside the first handle (runtime.md §7.1).
	callsMain bool
	// wasm64: a memory64 binary with i64 pointers in its ABI. wazero has no
	// memory64, so Compile lowers it to memory32 (package lower64) and the
	// host uses the wasm64 layouts (16-byte iovecs, 8-byte size_t).
	wasm64 bool
	// metered: a -metering format. Compile meters the binary like
	// @permaweb/wasm-metering (meter.AddGas; i32 meter for wasm32, i64 for
	// wasm64) and the host charges Compute-Limit through metering.usegas.
	// The glue is emscripten4's (wasm32) or wasm64's otherwise.
	metered bool
}

var formats = map[string]format{
	FormatEmscripten2:        {name: FormatEmscripten2, heapMax: 524_288_000, callsMain: true},
	FormatEmscripten3:        {name: FormatEmscripten3, heapMax: 4_294_901_760, callsMain: true},
	FormatEmscripten4:        {name: FormatEmscripten4, heapMax: 4_294_901_760},
	FormatWasm64:             {name: FormatWasm64, heapMax: 17_179_869_184, wasm64: true},
	FormatEmscriptenMetering: {name: FormatEmscriptenMetering, heapMax: 4_294_901_760, metered: true},
	FormatWasm64Metering:     {name: FormatWasm64Metering, heapMax: 17_179_869_184, wasm64: true, metered: true},
}

// Formats lists the Module-Format values Compile accepts.
func Formats() []string {
	return []string{FormatEmscripten2, FormatEmscripten3, FormatEmscripten4, FormatWasm64,
		FormatEmscriptenMetering, FormatWasm64Metering}
}

// ErrUnsupported is matched (errors.Is) by every *UnsupportedError.
var ErrUnsupported = errors.New("unsupported module")

// UnsupportedError reports a module this runtime cannot run: an unknown or
// unimplemented Module-Format, an Extension it does not provide, or a binary
// whose imports or exports do not fit the declared format. The CU answers
// these with 422 (units.md §5.3).
type UnsupportedError struct {
	Kind   string // "Module-Format", "Extension", "import", "export" or "binary"
	Value  string
	Reason string
}

func (e *UnsupportedError) Error() string {
	s := fmt.Sprintf("unsupported %s %q", e.Kind, e.Value)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

func lookupFormat(name string) (format, error) {
	if f, ok := formats[name]; ok {
		return f, nil
	}
	var reason string
	switch name {
	case FormatEmscripten:
		reason = "the minified glue's import names are build-specific"
	default:
		reason = "not a known Module-Format"
	}
	return format{}, &UnsupportedError{Kind: "Module-Format", Value: name, Reason: reason}
}
