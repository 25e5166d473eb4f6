//go:build !unix

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

func (b *imageBuf) set(src []byte, limit uint64) []byte {
	b.grow(uint64(len(src)), limit)
	n := len(src)
	copySparse(b.buf[:n], src, true)
	return b.buf[:n:n]
}

func (b *imageBuf) free() { b.buf = nil }

// holds reports whether image lies in the buffer.
func (b *imageBuf) holds(image []byte) bool {
	return len(image) > 0 && len(b.buf) > 0 && &image[0] == &b.buf[0]
}
