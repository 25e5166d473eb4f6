package su

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/aonode/aonode/ans104"
)

// HashChainSeed is the Hash-Chain of the first slot of a process (the process
// itself under AOP-6, the first message of a legacy process): SHA-256 of the
// process id's 32 raw bytes.
func HashChainSeed(processID [32]byte) [32]byte { return sha256.Sum256(processID[:]) }

// HashChainNext is the legacy (ao.TN.1) link: SHA-256 of the previous slot's
// assignment id followed by the previous slot's Hash-Chain, both as raw bytes.
func HashChainNext(prevAssignmentID, prevHashChain [32]byte) [32]byte {
	var b [64]byte
	copy(b[:32], prevAssignmentID[:])
	copy(b[32:], prevHashChain[:])
	return sha256.Sum256(b[:])
}

// decode32 decodes a base64url value that must be exactly 32 bytes, as the
// reference SU and CU require for ids and chain values.
func decode32(s string) ([32]byte, error) {
	var out [32]byte
	b, err := ans104.DecodeBase64URL(s)
	if err != nil {
		return out, fmt.Errorf("%q is not base64url: %w", s, err)
	}
	if len(b) != 32 {
		return out, fmt.Errorf("%q is %d bytes, want 32", s, len(b))
	}
	copy(out[:], b)
	return out, nil
}

// ChainLink is what verifying a schedule needs from one slot.
type ChainLink struct {
	Nonce        int64
	AssignmentID string
	HashChain    string
}

// ErrChainBroken is returned (wrapped) by VerifyHashChain.
var ErrChainBroken = errors.New("su: hash chain broken")

// VerifyHashChain checks a process's schedule from its first slot: the first
// link must carry HashChainSeed(processID) and every later link must chain on
// its predecessor; nonces must be consecutive.
func VerifyHashChain(processID string, links []ChainLink) error {
	pid, err := decode32(processID)
	if err != nil {
		return fmt.Errorf("su: process id: %w", err)
	}
	var prevAID, prevHC [32]byte
	for i, l := range links {
		hc, err := decode32(l.HashChain)
		if err != nil {
			return fmt.Errorf("%w at nonce %d: Hash-Chain %v", ErrChainBroken, l.Nonce, err)
		}
		want := HashChainSeed(pid)
		if i > 0 {
			if l.Nonce != links[i-1].Nonce+1 {
				return fmt.Errorf("%w: nonce %d follows %d", ErrChainBroken, l.Nonce, links[i-1].Nonce)
			}
			want = HashChainNext(prevAID, prevHC)
		}
		if hc != want {
			return fmt.Errorf("%w at nonce %d: Hash-Chain %s, want %s", ErrChainBroken, l.Nonce, l.HashChain, ans104.Base64URL(want[:]))
		}
		if prevAID, err = decode32(l.AssignmentID); err != nil {
			return fmt.Errorf("%w at nonce %d: assignment id %v", ErrChainBroken, l.Nonce, err)
		}
		prevHC = hc
	}
	return nil
}
