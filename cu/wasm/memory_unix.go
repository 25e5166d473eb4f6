//go:build unix

package wasm

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapMemory backs a linear memory with an anonymous mapping of its whole
// maximum, reserved inaccessible up front and made accessible as the memory
// grows. Growth then never moves or copies the memory: wazero's default
// reallocates a Go slice, so every memory.grow of a 100 MB aos heap copied
// it and left the old one to the garbage collector, with both alive at the
// peak. The kernel commits pages on first touch, and the memory lives
// outside the Go heap, so the garbage collector's heap target (and the CU's
// pauses) do not follow the processes' memory.
type mmapMemory struct {
	buf  []byte // the whole reservation
	size uint64 // accessible prefix
}

// newMemory reserves a linear memory of at most limit bytes (the module's
// maximum, or less under a Memory-Limit). When the reservation fails (an
// address space limit, say), it falls back to a growing Go slice.
func newMemory(limit uint64) experimental.LinearMemory {
	if limit > 0 && limit <= 1<<32 {
		buf, err := syscall.Mmap(-1, 0, int(limit), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
		if err == nil {
			return &mmapMemory{buf: buf}
		}
	}
	return &sliceMemory{}
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if m.buf == nil || size > uint64(len(m.buf)) {
		return nil
	}
	if size > m.size {
		if err := syscall.Mprotect(m.buf[m.size:size], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil
		}
		m.size = size
	}
	return m.buf[:size:size]
}

// Free unmaps the memory. wazero calls it when the module instance closes;
// no slice of the memory may be used after that.
func (m *mmapMemory) Free() {
	if m.buf != nil {
		syscall.Munmap(m.buf)
		m.buf, m.size = nil, 0
	}
}
