//go:build wasmtime && cgo

package wasm

// #include <stddef.h>
import "C"

import "unsafe"

// aonodeWasmtimeHost is the Go side of every Wasmtime host function (see
// aon_host). It lives in a file of its own because a cgo preamble next to
// an //export may only declare.
//
//export aonodeWasmtimeHost
func aonodeWasmtimeHost(data, env, args unsafe.Pointer, n C.size_t) unsafe.Pointer {
	return wasmtimeHost(uintptr(data), uintptr(env), args, int(n))
}
