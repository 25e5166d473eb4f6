package cu

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
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
			digest, err := writeMemory(path, mem, nil)
			if err != nil {
				t.Fatal(err)
			}
			im, err := readMemoryFile(path, len(mem), digest)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Free()
			if !bytes.Equal(im.Bytes(), mem) {
				t.Fatal("memory changed")
			}
			if _, err := readMemoryFile(path, len(mem)+1, digest); err == nil {
				t.Fatal("wrong size accepted")
			}
			// A file of an earlier version is named by the whole memory's
			// SHA-256, and checked against it.
			full := sha256.Sum256(mem)
			im2, err := readMemoryFile(path, len(mem), hex.EncodeToString(full[:]))
			if err != nil {
				t.Fatalf("legacy name: %v", err)
			}
			im2.Free()
			if len(mem) > 0 {
				other := bytes.Clone(mem)
				other[len(other)-1] ^= 1
				od, _ := writeMemory(filepath.Join(t.TempDir(), "o"), other, nil)
				if _, err := readMemoryFile(path, len(mem), od); err == nil {
					t.Fatal("a file accepted under another memory's digest")
				}
			}
		})
	}
}

func FuzzDecodeMemory(f *testing.F) {
	path := filepath.Join(f.TempDir(), "m")
	mem := make([]byte, 3*memPage)
	mem[5], mem[2*memPage+9] = 1, 2
	writeMemory(path, mem, nil)
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
	digest, err := writeMemory(path, mem, untouched)
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := writeMemory(filepath.Join(t.TempDir(), "w"), want, nil); wd != digest {
		t.Fatal("the digest read an untouched page")
	}
	im, err := readMemoryFile(path, len(mem), digest)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Free()
	if !bytes.Equal(im.Bytes(), want) {
		t.Fatal("the file holds what untouched marks zero, or lost a touched page")
	}
}

// TestMemoryFileV1 reads a checkpoint file of the first version (flate
// chunks, named by the whole memory's SHA-256), as data directories of
// earlier releases hold.
func TestMemoryFileV1(t *testing.T) {
	mem := make([]byte, 3*memPage)
	mem[5], mem[2*memPage+9] = 1, 2
	bitmap, nonZero := sparseLayout(mem, nil)
	var chunk bytes.Buffer
	zw, _ := flate.NewWriter(&chunk, flate.BestSpeed)
	for _, p := range nonZero {
		zw.Write(page(mem, p))
	}
	zw.Close()
	var f bytes.Buffer
	f.WriteString(memMagic1)
	f.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(mem))))
	f.Write(bitmap)
	f.Write(binary.LittleEndian.AppendUint32(nil, 1))
	f.Write(binary.LittleEndian.AppendUint32(nil, uint32(chunk.Len())))
	f.Write(chunk.Bytes())
	path := filepath.Join(t.TempDir(), "v1")
	os.WriteFile(path, f.Bytes(), 0o644)
	sum := sha256.Sum256(mem)
	im, err := readMemoryFile(path, len(mem), hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	defer im.Free()
	if !bytes.Equal(im.Bytes(), mem) {
		t.Fatal("memory changed")
	}
}
