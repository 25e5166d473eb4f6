//go:build !unix

package wasm

import "github.com/tetratelabs/wazero/experimental"

func newMemory(uint64) experimental.LinearMemory { return &sliceMemory{} }

// imageBuf holds a copy of a linear memory, reused by every copy.
type imageBuf struct{ buf []byte }

func (b *imageBuf) set(src []byte, _ uint64) []byte {
	b.buf = append(b.buf[:0], src...)
	return b.buf
}

func (b *imageBuf) free() { b.buf = nil }
