package cu

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// plainDigest is the Memory-SHA-256 definition written out directly.
func plainDigest(mem []byte) string {
	pages := len(mem) / digestPage
	root := sha256.New()
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(len(mem)))
	root.Write(size[:])
	for first := 0; first < pages; first += digestChunk {
		c := sha256.New()
		for i := first; i < min(first+digestChunk, pages); i++ {
			s := sha256.Sum256(mem[i*digestPage : (i+1)*digestPage])
			c.Write(s[:])
		}
		root.Write(c.Sum(nil))
	}
	return hex.EncodeToString(root.Sum(nil))
}

func TestMemoryDigestIncremental(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	mem := make([]byte, 3<<20+64<<10) // 3 chunks and a short one
	var d memDigest
	untouched := make([]bool, len(mem)/digestPage)
	for i := range untouched {
		untouched[i] = true
	}
	for step := range 40 {
		switch step % 4 {
		case 0: // write a few bytes at random pages
			for range 5 {
				p := r.IntN(len(untouched))
				mem[p*digestPage+r.IntN(digestPage)] = byte(r.Uint32())
				untouched[p] = false
			}
		case 1: // rewrite a page with what it held (no change)
		case 2: // zero a touched page
			for p, u := range untouched {
				if !u {
					clear(mem[p*digestPage : (p+1)*digestPage])
					break
				}
			}
		case 3: // grow by 64 KiB
			mem = append(mem, make([]byte, 64<<10)...)
			for range 16 {
				untouched = append(untouched, true)
			}
		}
		want := plainDigest(mem)
		if got := d.sum(mem, untouched); got != want {
			t.Fatalf("step %d: incremental digest %s, want %s", step, got, want)
		}
		if got := d.sum(mem, nil); got != want {
			t.Fatalf("step %d: digest without page marks %s, want %s", step, got, want)
		}
		if got := MemoryDigest(mem); got != want {
			t.Fatalf("step %d: MemoryDigest %s, want %s", step, got, want)
		}
	}
}

func BenchmarkMemoryDigest(b *testing.B) {
	mem := make([]byte, 105<<20)
	untouched := make([]bool, len(mem)/digestPage)
	for i := range untouched {
		untouched[i] = i%60 != 0 // ~1.7 MiB touched, as an aos process
		if !untouched[i] {
			mem[i*digestPage] = 1
		}
	}
	var d memDigest
	d.sum(mem, untouched)
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		for range 220 { // pages an aos message dirties
			p := r.IntN(len(untouched)/60) * 60
			mem[p*digestPage+r.IntN(digestPage)]++
		}
		d.sum(mem, untouched)
	}
}
