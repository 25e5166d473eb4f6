package ans104

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"golang.org/x/crypto/sha3"
)

// A Signer signs the 48-byte deep hash of a data item the way its signature type
// prescribes (RSA-PSS over SHA-256, plain Ed25519, EIP-191 secp256k1, ...).
type Signer interface {
	Type() SignatureType
	Owner() []byte // the raw public key written into the item
	Sign(deepHash []byte) ([]byte, error)
}

// ErrInvalidSignature is returned (wrapped) by Verify when the signature does not
// match the item.
var ErrInvalidSignature = errors.New("ans104: invalid signature")

// Verify checks the signature over the item's exact bytes. Types 6, 8 and 101
// parse but cannot be verified and return an error saying so.
func (d *DataItem) Verify() error {
	msg := d.SigningMessage()
	return verify(d.Type, d.Owner, d.Signature, msg[:])
}

func verify(t SignatureType, owner, sig, msg []byte) error {
	var ok bool
	switch t {
	case TypeArweave:
		if _, err := rsaPublicKey(owner); err != nil {
			return err
		}
		digest := sha256.Sum256(msg)
		ok = verifyPSS(owner, digest[:], sig)
	case TypeEd25519:
		ok = ed25519.Verify(owner, msg, sig)
	case TypeSolana:
		ok = ed25519.Verify(owner, []byte(hex.EncodeToString(msg)), sig)
	case TypeInjectedAptos:
		ok = ed25519.Verify(owner, aptosMessage(msg), sig)
	case TypeEthereum:
		if len(owner) != 65 || owner[0] != 4 {
			return fmt.Errorf("%w: ethereum owner must be a 65-byte uncompressed key", ErrInvalidSignature)
		}
		pub, err := recoverEthereum(eip191Digest(msg), sig)
		if err != nil {
			return err
		}
		ok = bytes.Equal(pub.SerializeUncompressed(), owner)
	case TypeTypedEthereum:
		addr, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(string(owner)), "0x"))
		if err != nil || len(addr) != 20 || !strings.HasPrefix(strings.ToLower(string(owner)), "0x") {
			return fmt.Errorf("%w: typed ethereum owner must be a 0x-prefixed 20-byte hex address", ErrInvalidSignature)
		}
		pub, err := recoverEthereum(eip712Digest(msg, addr), sig)
		if err != nil {
			return err
		}
		ok = bytes.Equal(ethereumAddress(pub), addr)
	default:
		return fmt.Errorf("ans104: verifying %s signatures is not supported", t)
	}
	if !ok {
		return ErrInvalidSignature
	}
	return nil
}

func aptosMessage(msg []byte) []byte {
	return []byte("APTOS\nmessage: " + hex.EncodeToString(msg) + "\nnonce: bundlr")
}

const rsaExponent = 65537

func rsaPublicKey(owner []byte) (*rsa.PublicKey, error) {
	if len(owner) != 512 || owner[0] == 0 {
		return nil, fmt.Errorf("%w: arweave owner must be a 4096-bit modulus", ErrInvalidSignature)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(owner), E: rsaExponent}, nil
}

// RSASigner signs type 1 items with RSA-PSS (salt length 32, as arweave-js in
// browsers and the Arweave node do; every verifier auto-detects the salt).
type RSASigner struct {
	key   *rsa.PrivateKey
	owner []byte
}

// NewRSASigner returns a signer for a 4096-bit key with exponent 65537.
func NewRSASigner(key *rsa.PrivateKey) (*RSASigner, error) {
	if key.N.BitLen() != 4096 || key.E != rsaExponent {
		return nil, fmt.Errorf("ans104: arweave keys are 4096-bit with exponent 65537, got %d-bit with %d", key.N.BitLen(), key.E)
	}
	key.Precompute()
	return &RSASigner{key: key, owner: key.N.FillBytes(make([]byte, 512))}, nil
}

func (s *RSASigner) Type() SignatureType { return TypeArweave }
func (s *RSASigner) Owner() []byte       { return s.owner }
func (s *RSASigner) Sign(msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	return rsa.SignPSS(rand.Reader, s.key, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}

// Ed25519Signer signs type 2 items.
type Ed25519Signer struct{ key ed25519.PrivateKey }

// NewEd25519Signer returns a signer for key.
func NewEd25519Signer(key ed25519.PrivateKey) *Ed25519Signer { return &Ed25519Signer{key} }

func (s *Ed25519Signer) Type() SignatureType { return TypeEd25519 }
func (s *Ed25519Signer) Owner() []byte       { return s.key.Public().(ed25519.PublicKey) }
func (s *Ed25519Signer) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(s.key, msg), nil
}

// EthereumSigner signs type 3 items with EIP-191 personal-sign: r ‖ s ‖ v with
// v in {27, 28} and a low S, as arbundles and the ao SU expect.
type EthereumSigner struct {
	key   *secp256k1.PrivateKey
	owner []byte
}

// NewEthereumSigner returns a signer for a secp256k1 private key.
func NewEthereumSigner(key *secp256k1.PrivateKey) *EthereumSigner {
	return &EthereumSigner{key: key, owner: key.PubKey().SerializeUncompressed()}
}

func (s *EthereumSigner) Type() SignatureType { return TypeEthereum }
func (s *EthereumSigner) Owner() []byte       { return s.owner }
func (s *EthereumSigner) Sign(msg []byte) ([]byte, error) {
	digest := eip191Digest(msg)
	compact := ecdsa.SignCompact(s.key, digest[:], false) // v ‖ r ‖ s, v = 27 + recovery id
	out := make([]byte, 65)
	copy(out, compact[1:])
	out[64] = compact[0]
	return out, nil
}

// EthereumAddress returns the native 0x address (lowercase hex) of a 65-byte
// uncompressed secp256k1 key, for display; AO itself uses Address.
func EthereumAddress(owner []byte) (string, error) {
	pub, err := secp256k1.ParsePubKey(owner)
	if err != nil {
		return "", fmt.Errorf("ans104: ethereum key: %w", err)
	}
	return "0x" + hex.EncodeToString(ethereumAddress(pub)), nil
}

func ethereumAddress(pub *secp256k1.PublicKey) []byte {
	return keccak256(pub.SerializeUncompressed()[1:])[12:]
}

func keccak256(parts ...[]byte) []byte {
	h := sha3.NewLegacyKeccak256()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func eip191Digest(msg []byte) []byte {
	return keccak256([]byte(fmt.Sprintf("\x19Ethereum Signed Message:\n%d", len(msg))), msg)
}

// EIP-712 constants for arbundles' TypedEthereumSigner: domain {name: "Bundlr",
// version: "1"} and primary type Bundlr(bytes Transaction hash, address address).
var (
	eip712Domain = keccak256(
		keccak256([]byte("EIP712Domain(string name,string version)")),
		keccak256([]byte("Bundlr")),
		keccak256([]byte("1")),
	)
	eip712TypeHash = keccak256([]byte("Bundlr(bytes Transaction hash,address address)"))
)

func eip712Digest(msg, addr []byte) []byte {
	var padded [32]byte
	copy(padded[12:], addr)
	structHash := keccak256(eip712TypeHash, keccak256(msg), padded[:])
	return keccak256([]byte{0x19, 0x01}, eip712Domain, structHash)
}

// recoverEthereum recovers the public key from an r ‖ s ‖ v signature, requiring
// v in {27, 28} and a low S as the reference verifiers do.
func recoverEthereum(digest, sig []byte) (*secp256k1.PublicKey, error) {
	if len(sig) != 65 {
		return nil, ErrInvalidSignature
	}
	v := sig[64]
	if v != 27 && v != 28 {
		return nil, fmt.Errorf("%w: recovery byte %d, want 27 or 28", ErrInvalidSignature, v)
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(sig[32:64]); overflow || s.IsOverHalfOrder() {
		return nil, fmt.Errorf("%w: S is not in the lower half of the curve order", ErrInvalidSignature)
	}
	var compact [65]byte
	compact[0] = v
	copy(compact[1:], sig[:64])
	pub, _, err := ecdsa.RecoverCompact(compact[:], digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSignature, err)
	}
	return pub, nil
}
