//go:build !linux

package wasm

// untouched cannot tell untouched pages on this platform.
func untouched([]byte) []bool { return nil }

// adviseHuge does nothing: huge pages are asked for on Linux only.
func adviseHuge([]byte) {}
