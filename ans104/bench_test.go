package ans104

import (
	"fmt"
	"testing"
)

// Benchmarks per signature type for a typical AO message: 3 tags, 1 KiB of data.
//
//	go test ./ans104 -run '^$' -bench . -benchmem
func BenchmarkParse(b *testing.B) {
	d, _ := Sign(NewEd25519Signer(edKey()), make([]byte, 1024), Options{Tags: vecTags})
	raw := d.Bytes()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	for _, s := range signers(b)[:3] {
		b.Run(fmt.Sprint(s.Type()), func(b *testing.B) {
			data := make([]byte, 1024)
			for b.Loop() {
				if _, err := Sign(s, data, Options{Tags: vecTags}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, s := range signers(b) {
		b.Run(fmt.Sprint(s.Type()), func(b *testing.B) {
			d, err := Sign(s, make([]byte, 1024), Options{Tags: vecTags})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := d.Verify(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDeepHash1MiB(b *testing.B) {
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		deepHashBlob(data)
	}
}
