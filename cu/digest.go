package cu

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"runtime"
	"unsafe"
)

// The Memory-SHA-256 of an attestation is a two-level hash of the process
// memory, so that any CU (or anyone with a memory dump) computes it the same
// way while a CU that evaluates message after message rehashes only the
// pages a message changed:
//
//	P_i  = SHA-256(page i)                      pages of 4096 bytes
//	C_j  = SHA-256(P_256j ‖ … ‖ P_256j+255)     chunks of 256 pages (1 MiB); the last may be shorter
//	root = SHA-256(uint64le(len(memory)) ‖ C_0 ‖ … ‖ C_k)
//
// and Memory-SHA-256 is root in lowercase hex. A wasm memory is a whole
// number of 64 KiB pages, so every 4096-byte page is whole.
const (
	digestPage  = 4096
	digestChunk = 256 // pages
)

var (
	zeroPageSum   = sha256.Sum256(make([]byte, digestPage))
	zeroChunkSums = map[int][32]byte{} // by pages in the chunk; filled by zeroChunkSum
)

// zeroChunkSum is C_j of a chunk of n zero pages: from the table for the
// sizes a wasm memory can end in, else computed.
func zeroChunkSum(n int) [32]byte {
	if s, ok := zeroChunkSums[n]; ok {
		return s
	}
	h := sha256.New()
	for range n {
		h.Write(zeroPageSum[:])
	}
	return [32]byte(h.Sum(nil))
}

func init() {
	// Every chunk size a wasm memory can end in (64 KiB steps), filled
	// once here: the map is only read after init.
	for n := 16; n <= digestChunk; n += 16 {
		zeroChunkSums[n] = zeroChunkSum(n)
	}
}

// MemoryDigest is the Memory-SHA-256 of mem, computed from scratch (what a
// verifier with a memory dump does). A wasm memory is a whole number of
// 64 KiB pages; mem of another length has no digest ("").
func MemoryDigest(mem []byte) string {
	if len(mem)%digestPage != 0 {
		return ""
	}
	var d memDigest
	return d.sum(mem, nil)
}

// memDigest computes the Memory-SHA-256 of one live memory after each
// message. It remembers each page's digest with a seeded maphash of its
// bytes: a page whose maphash is unchanged is not hashed again. The seed is
// random per memDigest, so process code cannot aim at a maphash collision
// to make the CU attest a stale page. Chunks never touched (all their pages
// untouched, per the kernel's page map) cost nothing to keep.
type memDigest struct {
	seed   maphash.Seed
	seeded bool
	base   uintptr // the memory the cache describes
	chunks []*chunkSums
	buf    []byte // scratch for chunk hashing
	units  []digestUnit
}

// chunkSums caches one chunk: a page's sum is valid when known[i].
type chunkSums struct {
	fp    [digestChunk]uint64
	known [digestChunk]bool
	zero  [digestChunk]bool // known to be an untouched page
	sums  [digestChunk][32]byte
	root  [32]byte
	n     int  // pages the root covers
	stale bool // a page sum changed since root
}

// sum returns the digest of mem. untouched (may be nil) marks the 4 KiB
// pages known to be zero without reading them. The pages are hashed on up
// to GOMAXPROCS goroutines: on a CU with idle cores (one busy process) the
// digest then adds less to each message's latency.
func (d *memDigest) sum(mem []byte, untouched []bool) string {
	if !d.seeded {
		d.seed, d.seeded = maphash.MakeSeed(), true
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	if base != d.base {
		// Another memory (a new instance, a rollback): start over.
		d.base, d.chunks = base, nil
	}
	pages := len(mem) / digestPage
	nchunks := (pages + digestChunk - 1) / digestChunk
	if len(d.chunks) > nchunks {
		d.chunks = d.chunks[:nchunks]
	}
	for len(d.chunks) < nchunks {
		d.chunks = append(d.chunks, nil)
	}
	// Units of work: runs of up to unitPages pages of chunks not wholly
	// untouched.
	const unitPages = 64
	d.units = d.units[:0]
	for j := range nchunks {
		first := j * digestChunk
		n := min(digestChunk, pages-first)
		if untouched != nil && allTrue(untouched[first:first+n]) {
			d.chunks[j] = nil
			continue
		}
		c := d.chunks[j]
		if c == nil {
			c = &chunkSums{}
			d.chunks[j] = c
		}
		for lo := 0; lo < n; lo += unitPages {
			d.units = append(d.units, digestUnit{c: c, first: first, lo: lo, hi: min(lo+unitPages, n)})
		}
	}
	work := func(k int) {
		u := &d.units[k]
		c := u.c
		for i := u.lo; i < u.hi; i++ {
			pg := mem[(u.first+i)*digestPage : (u.first+i+1)*digestPage]
			if untouched != nil && untouched[u.first+i] {
				if !c.zero[i] {
					c.known[i], c.zero[i], c.fp[i], c.sums[i], u.changed = true, true, 0, zeroPageSum, true
				}
				continue
			}
			c.zero[i] = false
			fp := maphash.Bytes(d.seed, pg)
			if c.known[i] && c.fp[i] == fp {
				continue
			}
			s := sha256.Sum256(pg)
			u.changed = u.changed || !c.known[i] || s != c.sums[i]
			c.known[i], c.fp[i], c.sums[i] = true, fp, s
		}
	}
	if len(d.units) >= 4 && runtime.GOMAXPROCS(0) > 1 {
		parallel(len(d.units), work)
	} else {
		for k := range d.units {
			work(k)
		}
	}
	for _, u := range d.units {
		if u.changed {
			u.c.stale = true
		}
	}
	root := sha256.New()
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(len(mem)))
	root.Write(size[:])
	for j, c := range d.chunks {
		n := min(digestChunk, pages-j*digestChunk)
		if c == nil {
			zs := zeroChunkSum(n)
			root.Write(zs[:])
			continue
		}
		if c.stale || c.n != n {
			d.buf = d.buf[:0]
			for i := range n {
				d.buf = append(d.buf, c.sums[i][:]...)
			}
			c.root, c.n, c.stale = sha256.Sum256(d.buf), n, false
		}
		root.Write(c.root[:])
	}
	return hex.EncodeToString(root.Sum(nil))
}

// digestUnit is a run of pages of one chunk, hashed by one goroutine.
type digestUnit struct {
	c             *chunkSums
	first, lo, hi int
	changed       bool
}

func allTrue(b []bool) bool {
	for _, v := range b {
		if !v {
			return false
		}
	}
	return true
}
