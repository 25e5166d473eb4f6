package cu

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/aonode/aonode/cu/wasm"
)

// Local checkpoint files hold a linear memory sparsely: WASM memories are
// mostly zero pages (a fresh aos instance is 71 MB of which 1,081 of 1,088
// 64 KiB pages are zero), and inflating zeros is what made gzip checkpoints
// slow to restore. The file is
//
//	magic "aonodemem2" | u64 memory size | bitmap of non-zero pages |
//	u32 chunk count | per chunk: u32 length, S2 block of up to chunkPages non-zero pages
//
// Chunks are compressed independently, so they are written and read in
// parallel. S2 (klauspost/compress) compresses and decompresses at GB/s where
// flate's 100-200 MB/s made up most of an eviction and of a restore; files
// of the first version ("aonodemem1", flate chunks) are still read.
const (
	memMagic   = "aonodemem2"
	memMagic1  = "aonodemem1"
	memPage    = 64 << 10
	chunkPages = 64 // 4 MiB of non-zero memory per chunk
)

// sparseLayout finds the non-zero 64 KiB pages of mem (reading none of the
// 4 KiB pages untouched marks zero) and returns the file's bitmap of them.
func sparseLayout(mem []byte, untouched []bool) (bitmap []byte, nonZero []int) {
	pages := (len(mem) + memPage - 1) / memPage
	bitmap = make([]byte, (pages+7)/8)
	for p := range pages {
		if !zeroPage64(mem, p, untouched) {
			bitmap[p/8] |= 1 << (p % 8)
			nonZero = append(nonZero, p)
		}
	}
	return bitmap, nonZero
}

// sparsePrefix marks a local checkpoint named by its sparse digest.
const sparsePrefix = "s1-"

// sparseDigest is the content address of a local checkpoint: SHA-256 over
// the memory size, the bitmap of non-zero pages and those pages. It names
// the same memories apart as the SHA-256 of the whole memory does, but hashes
// only what the process wrote (a few MiB of an aos memory's 105), which made
// every eviction and restore cost two full-memory hashes.
func sparseDigest(mem []byte, bitmap []byte, nonZero []int) string {
	h := sha256.New()
	h.Write([]byte(sparsePrefix))
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(mem))))
	h.Write(bitmap)
	for _, p := range nonZero {
		h.Write(page(mem, p))
	}
	return sparsePrefix + hex.EncodeToString(h.Sum(nil))
}

// writeMemory writes mem as a checkpoint file at path and returns its
// sparseDigest; untouched is as for sparseLayout.
func writeMemory(path string, mem []byte, untouched []bool) (string, error) {
	bitmap, nonZero := sparseLayout(mem, untouched)
	return sparseDigest(mem, bitmap, nonZero), writeMemoryFile(path, mem, bitmap, nonZero)
}

// writeMemoryFile writes mem, whose layout sparseLayout gave, to path
// atomically (temporary file, rename). It does not sync: a file a crash
// damaged fails its digest at restore, and the process is then restored
// from elsewhere or replayed, so the fsync bought nothing but latency.
func writeMemoryFile(path string, mem []byte, bitmap []byte, nonZero []int) error {
	chunks := make([][]byte, (len(nonZero)+chunkPages-1)/chunkPages)
	parallel(len(chunks), func(c int) {
		var raw []byte
		for _, p := range nonZero[c*chunkPages : min((c+1)*chunkPages, len(nonZero))] {
			raw = append(raw, page(mem, p)...)
		}
		chunks[c] = s2.Encode(nil, raw)
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
	errs := []error{w.err, f.Close()}
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
// cannot make us allocate more), into a new wasm.Image, and checks it against
// want: its sparseDigest, or, for a file of an earlier version named by the
// hex SHA-256 of the whole memory, that. The caller owns the image.
func readMemoryFile(path string, size int, want string) (*wasm.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	im, err := wasm.NewImage(size)
	if err != nil {
		return nil, err
	}
	bitmap, nonZero, err := decodeMemory(b, im.Bytes())
	if err == nil {
		var got string
		if strings.HasPrefix(want, sparsePrefix) {
			got = sparseDigest(im.Bytes(), bitmap, nonZero)
		} else {
			sum := sparseSum(im.Bytes(), memPage, func(p int) bool { return bitmap[p/8]&(1<<(p%8)) == 0 })
			got = hex.EncodeToString(sum[:])
		}
		if got != want {
			err = fmt.Errorf("cu: checkpoint file %s: content does not match its digest", path)
		}
	}
	if err != nil {
		im.Free()
		return nil, err
	}
	return im, nil
}

// zeroPage stands in for the zero pages of a memory being hashed, so that
// hashing does not touch (and fault in) the pages decoding left alone.
var zeroPage = make([]byte, memPage)

// decodeMemory decodes a memory file b into mem, which must be zero and as
// long as the memory, and returns its layout.
func decodeMemory(b []byte, mem []byte) (bitmap []byte, nonZero []int, err error) {
	bad := func(msg string) ([]byte, []int, error) { return nil, nil, fmt.Errorf("cu: checkpoint file: %s", msg) }
	if len(b) < len(memMagic)+8 || string(b[:len(memMagic)]) != memMagic && string(b[:len(memMagic)]) != memMagic1 {
		return bad("not a memory file")
	}
	v1 := string(b[:len(memMagic)]) == memMagic1
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
	bitmap, b = b[:(pages+7)/8], b[(pages+7)/8:]
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
		pages := nonZero[c*chunkPages : min((c+1)*chunkPages, len(nonZero))]
		if !v1 {
			want := 0
			for _, p := range pages {
				want += len(page(mem, p))
			}
			if l, err := s2.DecodedLen(chunks[c]); err != nil || l != want {
				errs[c] = fmt.Errorf("cu: checkpoint file: chunk %d does not hold its pages", c)
				return
			}
			raw, err := s2.Decode(make([]byte, want), chunks[c])
			if err != nil {
				errs[c] = fmt.Errorf("cu: checkpoint file: chunk %d: %w", c, err)
				return
			}
			for _, p := range pages {
				raw = raw[copy(page(mem, p), raw):]
			}
			return
		}
		zr := flate.NewReader(bytes.NewReader(chunks[c]))
		for _, p := range pages {
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
		return nil, nil, err
	}
	return bitmap, nonZero, nil
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
