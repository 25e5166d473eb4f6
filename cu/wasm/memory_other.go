//go:build !(linux || darwin)

package wasm

import "github.com/tetratelabs/wazero/experimental"

func newMemory(uint64) experimental.LinearMemory { return &sliceMemory{} }

// imageBuf holds a copy of a linear memory, reused by every copy.
type imageBuf struct{ buf []byte }

func (b *imageBuf) grow(n, _ uint64) {
	if n > uint64(len(b.buf)) {
		b.buf = make([]byte, n)
	}
}

func (b *imageBuf) free() { b.buf = nil }
