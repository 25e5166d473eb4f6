package ans104

import "fmt"

// SignatureType is the u16 that opens every data item and fixes the signature
// and owner lengths and the verification rule.
type SignatureType uint16

// Signature types known to arbundles and the ao SU.
const (
	TypeArweave       SignatureType = 1   // RSA-PSS 4096, SHA-256
	TypeEd25519       SignatureType = 2   // Ed25519 over the raw deep hash
	TypeEthereum      SignatureType = 3   // secp256k1, EIP-191 personal-sign
	TypeSolana        SignatureType = 4   // Ed25519 over the hex of the deep hash
	TypeInjectedAptos SignatureType = 5   // Ed25519 over an Aptos message string
	TypeMultiAptos    SignatureType = 6   // up to 32 Ed25519 signatures (parsed, not verified)
	TypeTypedEthereum SignatureType = 7   // secp256k1, EIP-712 "Bundlr" typed data
	TypeStarknet      SignatureType = 8   // parsed, not verified
	TypeKyve          SignatureType = 101 // parsed, not verified
)

type sigInfo struct {
	sigLen, ownerLen int
	name             string
}

var sigTable = map[SignatureType]sigInfo{
	TypeArweave:       {512, 512, "arweave"},
	TypeEd25519:       {64, 32, "ed25519"},
	TypeEthereum:      {65, 65, "ethereum"},
	TypeSolana:        {64, 32, "solana"},
	TypeInjectedAptos: {64, 32, "injectedAptos"},
	TypeMultiAptos:    {32*64 + 4, 32*32 + 1, "multiAptos"},
	TypeTypedEthereum: {65, 42, "typedEthereum"},
	TypeStarknet:      {96, 67, "starknet"},
	TypeKyve:          {65, 65, "kyve"},
}

// SignatureLength and OwnerLength report the fixed field sizes of t,
// or 0 when t is unknown.
func (t SignatureType) SignatureLength() int { return sigTable[t].sigLen }

// OwnerLength reports the owner (public key) length of t, or 0 when t is unknown.
func (t SignatureType) OwnerLength() int { return sigTable[t].ownerLen }

// Known reports whether data items of type t can be parsed.
func (t SignatureType) Known() bool { _, ok := sigTable[t]; return ok }

func (t SignatureType) String() string {
	if s, ok := sigTable[t]; ok {
		return s.name
	}
	return fmt.Sprintf("unknown(%d)", uint16(t))
}
