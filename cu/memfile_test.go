package cu

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestMemoryFileRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		mem  func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"all zero", func() []byte { return make([]byte, 10*memPage) }},
		{"partial last page", func() []byte { b := make([]byte, 3*memPage+100); b[len(b)-1] = 7; return b }},
		{"sparse, many chunks", func() []byte {
			b := make([]byte, 300*memPage)
			for p := 0; p < 300; p += 2 {
				for i := range 100 {
					b[p*memPage+r.IntN(memPage)] = byte(i + 1)
				}
			}
			return b
		}},
		{"random", func() []byte {
			b := make([]byte, 5*memPage)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := tc.mem()
			path := filepath.Join(t.TempDir(), "m")
			if err := writeMemoryFile(path, mem, nil); err != nil {
				t.Fatal(err)
			}
			im, sum, err := readMemoryFile(path, len(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer im.Free()
			if !bytes.Equal(im.Bytes(), mem) {
				t.Fatal("memory changed")
			}
			if sum != sha256.Sum256(mem) {
				t.Fatal("wrong SHA-256")
			}
			if _, _, err := readMemoryFile(path, len(mem)+1); err == nil {
				t.Fatal("wrong size accepted")
			}
		})
	}
}

func FuzzDecodeMemory(f *testing.F) {
	path := filepath.Join(f.TempDir(), "m")
	mem := make([]byte, 3*memPage)
	mem[5], mem[2*memPage+9] = 1, 2
	writeMemoryFile(path, mem, nil)
	b, _ := readFileBytes(path)
	f.Add(b)
	f.Add([]byte(memMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeMemory(b, make([]byte, len(mem))) // must not panic
	})
}

func readFileBytes(path string) ([]byte, error) { return os.ReadFile(path) }

// TestMemoryFileUntouched: pages marked untouched (wasm.Instance.View) are
// taken as zero without being read, by the file and by the hash; to prove
// they are not read, one such page holds a byte that must not show up.
func TestMemoryFileUntouched(t *testing.T) {
	const small = smallPage
	mem := make([]byte, 2*memPage+3*small)
	untouched := make([]bool, (len(mem)+small-1)/small)
	for i := range untouched {
		untouched[i] = true
	}
	mem[5] = 1 // page 0, small page 0: touched
	untouched[0] = false
	mem[memPage+3*small] = 2 // a small page of page 1 marked untouched: must not be read
	mem[2*memPage+small+7] = 3
	untouched[(2*memPage+small)/small] = false
	want := bytes.Clone(mem)
	want[memPage+3*small] = 0
	if got := memorySum(mem, untouched); got != sha256.Sum256(want) {
		t.Fatal("memorySum read an untouched page or missed a touched one")
	}
	if got := memorySum(want, nil); got != sha256.Sum256(want) {
		t.Fatal("memorySum without marks differs from SHA-256")
	}
	path := filepath.Join(t.TempDir(), "m")
	if err := writeMemoryFile(path, mem, untouched); err != nil {
		t.Fatal(err)
	}
	im, sum, err := readMemoryFile(path, len(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer im.Free()
	if !bytes.Equal(im.Bytes(), want) || sum != sha256.Sum256(want) {
		t.Fatal("the file holds what untouched marks zero, or lost a touched page")
	}
}
