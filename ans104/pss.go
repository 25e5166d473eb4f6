package ans104

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/big"
)

// verifyPSS is RSASSA-PSS-VERIFY (RFC 8017 §8.1.2) for Arweave signatures:
// a 4096-bit modulus n (the item's owner), e = 65537, SHA-256 for the
// message and MGF1, and the salt length detected from the encoding. It
// accepts exactly what rsa.VerifyPSS with PSSSaltLengthAuto accepts
// (TestVerifyPSSMatchesCryptoRSA), at about a third of the cost: crypto/rsa
// builds a constant-time Montgomery modulus for every call, which costs more
// than the exponentiation itself, while a verification handles only public
// values and needs no constant time, so math/big's exponentiation serves.
func verifyPSS(owner, digest, sig []byte) bool {
	const (
		k      = 512     // modulus bytes
		emBits = 8*k - 1 // modBits - 1, with modBits = 4096
		emLen  = k       // ceil(emBits / 8)
		hLen   = sha256.Size
		top    = 0xff >> 1 // clears the 8*emLen - emBits = 1 leftmost bit
	)
	if len(owner) != k || owner[0] == 0 || len(sig) != k || len(digest) != hLen {
		return false
	}
	n := new(big.Int).SetBytes(owner)
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(n) >= 0 {
		return false
	}
	em := new(big.Int).Exp(s, big.NewInt(rsaExponent), n).FillBytes(make([]byte, emLen))

	// EMSA-PSS-VERIFY (§9.1.2).
	if em[emLen-1] != 0xbc || em[0]&^byte(top) != 0 {
		return false
	}
	db, h := em[:emLen-hLen-1], em[emLen-hLen-1:emLen-1]
	mgf1XOR(db, h)
	db[0] &= top
	ps := bytes.IndexByte(db, 0x01) // the salt follows PS (zeros) and 0x01
	if ps < 0 {
		return false
	}
	for _, b := range db[:ps] {
		if b != 0 {
			return false
		}
	}
	salt := db[ps+1:]
	d := sha256.New()
	var zeros [8]byte
	d.Write(zeros[:])
	d.Write(digest)
	d.Write(salt)
	return bytes.Equal(d.Sum(nil), h)
}

// mgf1XOR XORs MGF1-SHA-256(seed) into out.
func mgf1XOR(out, seed []byte) {
	var counter [4]byte
	var sum [sha256.Size]byte
	d := sha256.New()
	for done, c := 0, uint32(0); done < len(out); c++ {
		binary.BigEndian.PutUint32(counter[:], c)
		d.Reset()
		d.Write(seed)
		d.Write(counter[:])
		d.Sum(sum[:0])
		for i := 0; i < len(sum) && done < len(out); i++ {
			out[done] ^= sum[i]
			done++
		}
	}
}
