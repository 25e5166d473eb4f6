package wasm

import (
	"context"

	"github.com/tetratelabs/wazero/experimental"
)

// withMemory makes wazero allocate the instance's linear memory with
// newMemory, reserving at most limitPages.
func withMemory(ctx context.Context, limitPages uint32) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(
		func(_, max uint64) experimental.LinearMemory {
			return newMemory(min(max, uint64(limitPages)*65536))
		}))
}

// sliceMemory is a linear memory in a Go slice, grown like wazero's default:
// by reallocation and copy.
type sliceMemory struct{ buf []byte }

func (m *sliceMemory) Reallocate(size uint64) []byte {
	if size > uint64(cap(m.buf)) {
		b := make([]byte, size, size+size/4)
		copy(b, m.buf)
		m.buf = b
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *sliceMemory) Free() { m.buf = nil }

// set copies src, a linear memory, into the buffer (imageBuf, one per
// platform) and returns the copy, valid until the next set or free.
func (b *imageBuf) set(src []byte, limit uint64) []byte {
	b.grow(uint64(len(src)), limit)
	n := len(src)
	copySparse(b.buf[:n], src, true)
	return b.buf[:n:n]
}

// holds reports whether image lies in the buffer.
func (b *imageBuf) holds(image []byte) bool {
	return len(image) > 0 && len(b.buf) > 0 && &image[0] == &b.buf[0]
}
