package ans104

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	mrand "math/rand/v2"
	"testing"
)

// TestVerifyPSSMatchesCryptoRSA checks verifyPSS against crypto/rsa's
// VerifyPSS (PSSSaltLengthAuto) on valid signatures of every salt length,
// on corrupted ones, and on hand-made encodings that break each rule of
// EMSA-PSS-VERIFY: both must give the same answer every time.
func TestVerifyPSSMatchesCryptoRSA(t *testing.T) {
	key := testRSAKey(t)
	owner := key.N.FillBytes(make([]byte, 512))
	check := func(name string, digest, sig []byte, want bool) {
		t.Helper()
		ref := rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
		got := verifyPSS(owner, digest, sig)
		if got != ref || got != want {
			t.Errorf("%s: verifyPSS %v, crypto/rsa %v, want %v", name, got, ref, want)
		}
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	digest := func() []byte {
		d := sha256.Sum256([]byte{byte(rng.Uint32()), byte(rng.Uint32())})
		return d[:]
	}

	for _, salt := range []int{0, 1, 20, 32, 64, 300, 478} {
		d := digest()
		sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, d, &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		check("valid", d, sig, true)
		other := digest()
		check("other digest", other, sig, false)
		for range 8 {
			bad := append([]byte(nil), sig...)
			bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
			check("flipped bit", d, bad, false)
		}
		check("short", d, sig[1:], false)
		check("long", d, append([]byte{0}, sig...), false)
	}
	d := digest()
	over := new(big.Int).Add(key.N, big.NewInt(5)).FillBytes(make([]byte, 512))
	check("signature not below n", d, over, false)

	// Hand-made encoded messages, raised to d to make signatures.
	raw := func(em []byte) []byte {
		m := new(big.Int).SetBytes(em)
		if m.Cmp(key.N) >= 0 {
			return nil
		}
		return new(big.Int).Exp(m, key.D, key.N).FillBytes(make([]byte, 512))
	}
	encode := func(mHash, salt []byte, mutate func(db, em []byte)) []byte {
		const emLen, hLen = 512, 32
		h := sha256.New()
		h.Write(make([]byte, 8))
		h.Write(mHash)
		h.Write(salt)
		hv := h.Sum(nil)
		em := make([]byte, emLen)
		db := em[:emLen-hLen-1]
		db[len(db)-len(salt)-1] = 0x01
		copy(db[len(db)-len(salt):], salt)
		if mutate != nil {
			mutate(db, nil)
		}
		mgf1XOR(db, hv)
		db[0] &= 0x7f
		copy(em[emLen-hLen-1:], hv)
		em[emLen-1] = 0xbc
		if mutate != nil {
			mutate(nil, em)
		}
		return em
	}
	salt := []byte("0123456789abcdef0123456789abcdef")
	cases := []struct {
		name   string
		mutate func(db, em []byte)
		want   bool
	}{
		{"crafted valid", nil, true},
		{"trailer not 0xbc", func(db, em []byte) {
			if em != nil {
				em[511] = 0xbd
			}
		}, false},
		{"leftmost bit set", func(db, em []byte) {
			if em != nil {
				em[0] |= 0x80
			}
		}, false},
		{"nonzero padding", func(db, em []byte) {
			if db != nil {
				db[10] = 7
			}
		}, false},
		{"no 0x01 separator", func(db, em []byte) {
			if db != nil {
				db[len(db)-len(salt)-1] = 0x02
			}
		}, false},
		{"padding of 0x01 then zeros", func(db, em []byte) {
			if db != nil {
				db[5] = 0x01 // an earlier 0x01 makes a longer salt: hash mismatch
			}
		}, false},
		{"wrong hash", func(db, em []byte) {
			if em != nil {
				em[490] ^= 0xff
			}
		}, false},
	}
	for _, c := range cases {
		d := digest()
		em := encode(d, salt, c.mutate)
		sig := raw(em)
		if sig == nil {
			t.Logf("%s: encoding not below n, skipped", c.name)
			continue
		}
		check(c.name, d, sig, c.want)
	}
	// The encoding with salt filling all of DB (no padding at all).
	full := make([]byte, 512-32-2)
	for i := range full {
		full[i] = byte(rng.Uint32())
	}
	d = digest()
	check("salt fills DB", d, raw(encode(d, full, nil)), true)
}

var rsaTestKey *rsa.PrivateKey

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	if rsaTestKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 4096)
		if err != nil {
			t.Fatal(err)
		}
		rsaTestKey = k
	}
	return rsaTestKey
}

func BenchmarkVerifyPSS(b *testing.B) {
	key := testRSAKey(b)
	owner := key.N.FillBytes(make([]byte, 512))
	d := sha256.Sum256([]byte("x"))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: 32})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ours", func(b *testing.B) {
		for b.Loop() {
			if !verifyPSS(owner, d[:], sig) {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			if rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, d[:], sig, nil) != nil {
				b.Fatal("rejected")
			}
		}
	})
}

// FuzzVerifyPSS compares verifyPSS with crypto/rsa on arbitrary signatures
// and digests under one key.
func FuzzVerifyPSS(f *testing.F) {
	key := testRSAKey(f)
	owner := key.N.FillBytes(make([]byte, 512))
	d := sha256.Sum256([]byte("seed"))
	sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: 32})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d[:], sig)
	f.Add(d[:], sig[:100])
	f.Fuzz(func(t *testing.T, digest, sig []byte) {
		if len(digest) != sha256.Size {
			return // crypto/rsa would reject on the hash length alone
		}
		ref := rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
		if got := verifyPSS(owner, digest, sig); got != ref {
			t.Fatalf("verifyPSS %v, crypto/rsa %v", got, ref)
		}
	})
}
