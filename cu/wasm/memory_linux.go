package wasm

import (
	"encoding/binary"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// adviseHuge asks for transparent huge pages for b. It is advice only:
// without THP the pages are just small.
func adviseHuge(b []byte) { syscall.Madvise(b, syscall.MADV_HUGEPAGE) }

var pagemap = sync.OnceValue(func() *os.File {
	f, _ := os.Open("/proc/self/pagemap")
	return f
})

// untouched reports, for each 4 KiB page of b, whether the process has never
// touched it: neither present in memory nor swapped out (/proc/self/pagemap).
// Such a page of anonymous memory is zero, and telling so by reading it would
// map it (here, reading an untouched page is enough to make it count as
// resident). It returns nil when it cannot tell: b is not page-aligned, or
// there is no /proc. b must be anonymous memory: a never-touched page of a
// file mapping has the file's content.
func untouched(b []byte) []bool {
	const page = 4096
	f := pagemap()
	if f == nil || len(b) == 0 || os.Getpagesize() != page {
		return nil
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if addr%page != 0 {
		return nil
	}
	n := (len(b) + page - 1) / page
	buf := make([]byte, 8*n)
	if _, err := f.ReadAt(buf, int64(addr/page)*8); err != nil {
		return nil
	}
	out := make([]bool, n)
	for i := range out {
		const present, swapped = 1 << 63, 1 << 62
		out[i] = binary.LittleEndian.Uint64(buf[8*i:])&(present|swapped) == 0
	}
	return out
}
