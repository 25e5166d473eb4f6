//go:build linux || darwin

package wasm

import (
	"runtime"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// reserve maps size bytes of anonymous memory with protection prot, without
// committing swap. With huge, it asks for transparent huge pages: an aos
// heap is about 100 MB that the Lua collector walks all over, and with 4 KiB
// pages the TLB misses cost about a tenth of the run time. Huge pages cost
// resident memory, though: a 2 MiB page is whole as soon as one byte of it
// is written (and the kernel's khugepaged fills in sparse ones), so memory
// that is copied more than it is run on keeps small pages.
func reserve(size uint64, prot int, huge bool) ([]byte, error) {
	buf, err := syscall.Mmap(-1, 0, int(size), prot, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, err
	}
	if huge {
		adviseHuge(buf)
	}
	return buf, nil
}

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
		if buf, err := reserve(limit, syscall.PROT_NONE, true); err == nil {
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

// imageBuf holds a copy of a linear memory (an instance's rollback base)
// outside the Go heap, in one mapping reused by every copy, in small pages
// and with the zero pages left untouched: it costs resident memory only for
// what the process has written. In the Go heap, a 100 MB image made the
// garbage collector's heap target jump and started a collection that has to
// stop the goroutine running wasm, and each fresh copy paid its page faults
// again.
type imageBuf struct {
	buf     []byte // the mapping, or a Go slice when mapping failed
	cleanup runtime.Cleanup
	mapped  bool
}

// grow makes the buffer hold at least n bytes, zero where it is new. limit
// is the largest image the buffer will be asked to hold (the instance's
// memory limit): it is reserved at once, as untouched pages cost nothing
// and the buffer then never moves.
func (b *imageBuf) grow(n, limit uint64) {
	if n <= uint64(len(b.buf)) {
		return
	}
	b.free()
	if buf, err := reserve(max(n, limit), syscall.PROT_READ|syscall.PROT_WRITE, false); err == nil {
		b.buf, b.mapped = buf, true
		// An instance dropped without Close must not leak the mapping.
		b.cleanup = runtime.AddCleanup(b, func(buf []byte) { syscall.Munmap(buf) }, buf)
	} else {
		b.buf = make([]byte, n)
	}
}

// free releases the buffer; no copy returned by set may be used after it.
func (b *imageBuf) free() {
	if b.mapped {
		b.cleanup.Stop()
		syscall.Munmap(b.buf)
	}
	b.buf, b.mapped = nil, false
}
