package cu

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/aonode/aonode/cu/wasm"
)

// Local checkpoint files hold a linear memory sparsely: WASM memories are
// mostly zero pages (a fresh aos instance is 71 MB of which 1,081 of 1,088
// 64 KiB pages are zero), and inflating zeros is what made gzip checkpoints
// slow to restore. The file is
//
//	magic "aonodemem1" | u64 memory size | bitmap of non-zero pages |
//	u32 chunk count | per chunk: u32 length, flate data of up to chunkPages non-zero pages
//
// Chunks are compressed independently, so they are written and read in parallel.
const (
	memMagic   = "aonodemem1"
	memPage    = 64 << 10
	chunkPages = 64 // 4 MiB of non-zero memory per chunk
)

// writeMemoryFile writes mem to path atomically (temporary file, sync, rename).
// untouched, if not nil, marks 4 KiB pages of mem known to be zero, which are
// then not read (wasm.Instance.View).
func writeMemoryFile(path string, mem []byte, untouched []bool) error {
	pages := (len(mem) + memPage - 1) / memPage
	bitmap := make([]byte, (pages+7)/8)
	var nonZero []int
	for p := range pages {
		if !zeroPage64(mem, p, untouched) {
			bitmap[p/8] |= 1 << (p % 8)
			nonZero = append(nonZero, p)
		}
	}
	chunks := make([][]byte, (len(nonZero)+chunkPages-1)/chunkPages)
	parallel(len(chunks), func(c int) {
		var buf bytes.Buffer
		zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
		for _, p := range nonZero[c*chunkPages : min((c+1)*chunkPages, len(nonZero))] {
			zw.Write(page(mem, p))
		}
		zw.Close()
		chunks[c] = buf.Bytes()
	})

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cu: checkpoint dir: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cu: checkpoint: %w", err)
	}
	defer os.Remove(f.Name())
	w := &errWriter{w: f}
	w.Write([]byte(memMagic))
	w.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(mem))))
	w.Write(bitmap)
	w.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(chunks))))
	for _, c := range chunks {
		w.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(c))))
		w.Write(c)
	}
	errs := []error{w.err, f.Sync(), f.Close()}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cu: checkpoint: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("cu: checkpoint: %w", err)
	}
	return nil
}

// readMemoryFile reads a memory written by writeMemoryFile, which must be
// size bytes long (the size is recorded with the checkpoint, so a damaged file
// cannot make us allocate more), into a new wasm.Image, and returns its
// SHA-256. The caller owns the image.
func readMemoryFile(path string, size int) (*wasm.Image, [32]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, [32]byte{}, err
	}
	im, err := wasm.NewImage(size)
	if err != nil {
		return nil, [32]byte{}, err
	}
	sum, err := decodeMemory(b, im.Bytes())
	if err != nil {
		im.Free()
		return nil, [32]byte{}, err
	}
	return im, sum, nil
}

// zeroPage stands in for the zero pages of a memory being hashed, so that
// hashing does not touch (and fault in) the pages decoding left alone.
var zeroPage = make([]byte, memPage)

// decodeMemory decodes a memory file b into mem, which must be zero and as
// long as the memory, and returns the memory's SHA-256.
func decodeMemory(b []byte, mem []byte) ([32]byte, error) {
	bad := func(msg string) ([32]byte, error) { return [32]byte{}, fmt.Errorf("cu: checkpoint file: %s", msg) }
	if len(b) < len(memMagic)+8 || string(b[:len(memMagic)]) != memMagic {
		return bad("not a memory file")
	}
	b = b[len(memMagic):]
	size := binary.LittleEndian.Uint64(b)
	b = b[8:]
	if size != uint64(len(mem)) {
		return bad(fmt.Sprintf("memory is %d bytes, the checkpoint says %d", size, len(mem)))
	}
	pages := int((size + memPage - 1) / memPage)
	if len(b) < (pages+7)/8+4 {
		return bad("truncated bitmap")
	}
	bitmap, b := b[:(pages+7)/8], b[(pages+7)/8:]
	var nonZero []int
	for p := range pages {
		if bitmap[p/8]&(1<<(p%8)) != 0 {
			nonZero = append(nonZero, p)
		}
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n != (len(nonZero)+chunkPages-1)/chunkPages {
		return bad("chunk count does not match the bitmap")
	}
	chunks := make([][]byte, n)
	for c := range chunks {
		if len(b) < 4 || uint64(binary.LittleEndian.Uint32(b)) > uint64(len(b)-4) {
			return bad("truncated chunk")
		}
		l := int(binary.LittleEndian.Uint32(b))
		chunks[c], b = b[4:4+l], b[4+l:]
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	errs := make([]error, n)
	parallel(n, func(c int) {
		zr := flate.NewReader(bytes.NewReader(chunks[c]))
		for _, p := range nonZero[c*chunkPages : min((c+1)*chunkPages, len(nonZero))] {
			if _, err := io.ReadFull(zr, page(mem, p)); err != nil {
				errs[c] = fmt.Errorf("cu: checkpoint file: chunk %d: %w", c, err)
				return
			}
		}
		if n, _ := zr.Read(make([]byte, 1)); n != 0 {
			errs[c] = fmt.Errorf("cu: checkpoint file: chunk %d is longer than its pages", c)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return [32]byte{}, err
	}
	return sparseSum(mem, memPage, func(p int) bool { return bitmap[p/8]&(1<<(p%8)) == 0 }), nil
}

func page(mem []byte, p int) []byte { return mem[p*memPage : min((p+1)*memPage, len(mem))] }

// smallPage is the granularity of the untouched marks (wasm.Instance.View).
const smallPage = 4096

// zeroPage64 reports whether page p of mem is zero, reading none of its
// small pages that untouched marks zero.
func zeroPage64(mem []byte, p int, untouched []bool) bool {
	pg := page(mem, p)
	first := p * memPage / smallPage
	for off := 0; off < len(pg); off += smallPage {
		if untouched != nil && untouched[first+off/smallPage] {
			continue
		}
		if !allZero(pg[off:min(off+smallPage, len(pg))]) {
			return false
		}
	}
	return true
}

// memorySum is the SHA-256 of mem, reading none of the small pages that
// untouched (which may be nil) marks zero.
func memorySum(mem []byte, untouched []bool) [32]byte {
	return sparseSum(mem, smallPage, func(i int) bool { return untouched != nil && untouched[i] })
}

// sparseSum is the SHA-256 of mem, hashing the zeroPage instead of each page
// of size bytes (at most memPage) that zero says is zero, so that those pages
// are not read.
func sparseSum(mem []byte, size int, zero func(page int) bool) [32]byte {
	h := sha256.New()
	for i, off := 0, 0; off < len(mem); i, off = i+1, off+size {
		pg := mem[off:min(off+size, len(mem))]
		if zero(i) {
			pg = zeroPage[:len(pg)]
		}
		h.Write(pg)
	}
	return [32]byte(h.Sum(nil))
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parallel runs f(0..n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, f func(int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}
