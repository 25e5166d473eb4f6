// Package wallet loads, generates and saves the key files that sign data items:
// Arweave RSA-4096 JWKs (the format arweave-js, ArConnect and aoconnect use),
// Ed25519 keys as OKP JWKs (RFC 8037) and Ethereum secp256k1 keys as EC JWKs
// (a file holding just the hex private key is also accepted, as MetaMask exports it).
package wallet

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/aonode/aonode/ans104"
)

// Kinds of wallet.
const (
	Arweave  = "arweave"
	Ed25519  = "ed25519"
	Ethereum = "ethereum"
)

// Kinds lists the wallet kinds Generate accepts.
var Kinds = []string{Arweave, Ed25519, Ethereum}

// Wallet is a private key that signs data items.
type Wallet struct {
	ans104.Signer
	kind string
	jwk  jwk
}

// jwk holds the members of every key type we write; unused ones are omitted.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	D   string `json:"d,omitempty"`
	P   string `json:"p,omitempty"`
	Q   string `json:"q,omitempty"`
	DP  string `json:"dp,omitempty"`
	DQ  string `json:"dq,omitempty"`
	QI  string `json:"qi,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// Kind reports "arweave", "ed25519" or "ethereum".
func (w *Wallet) Kind() string { return w.kind }

// Address is the AO address: base64url(SHA-256(owner)), what processes see as
// the sender and what Authority and Scheduler tags name.
func (w *Wallet) Address() string { return ans104.Address(w.Owner()) }

// NativeAddress is the address the key's own chain shows: the 0x address of an
// Ethereum key, and the AO address for the others.
func (w *Wallet) NativeAddress() string {
	if w.kind == Ethereum {
		a, _ := ans104.EthereumAddress(w.Owner())
		return a
	}
	return w.Address()
}

// MarshalJSON returns the key as a JWK.
func (w *Wallet) MarshalJSON() ([]byte, error) { return json.Marshal(w.jwk) }

// Generate creates a new key of the given kind. Arweave keys take a few seconds.
func Generate(kind string) (*Wallet, error) {
	switch kind {
	case Arweave:
		k, err := rsa.GenerateKey(rand.Reader, 4096)
		if err != nil {
			return nil, fmt.Errorf("wallet: generate rsa key: %w", err)
		}
		return fromRSA(k)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("wallet: generate ed25519 key: %w", err)
		}
		return fromEd25519(k), nil
	case Ethereum:
		k, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			return nil, fmt.Errorf("wallet: generate secp256k1 key: %w", err)
		}
		return fromSecp256k1(k), nil
	}
	return nil, fmt.Errorf("wallet: unknown kind %q (want %s)", kind, strings.Join(Kinds, ", "))
}

// Load reads a key file.
func Load(path string) (*Wallet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wallet: %w", err)
	}
	w, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("wallet %s: %w", path, err)
	}
	return w, nil
}

// Parse reads a JWK of any supported kind, or a hex Ethereum private key.
func Parse(b []byte) (*Wallet, error) {
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, "{") {
		raw, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
		if err != nil || len(raw) != 32 {
			return nil, errors.New("not a JWK, nor a 32-byte hex Ethereum private key")
		}
		return fromSecp256k1(secp256k1.PrivKeyFromBytes(raw)), nil
	}
	var k jwk
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("JWK: %w", err)
	}
	num := func(name, v string) (*big.Int, error) {
		raw, err := ans104.DecodeBase64URL(v)
		if err != nil || len(raw) == 0 {
			return nil, fmt.Errorf("JWK member %q is missing or not base64url", name)
		}
		return new(big.Int).SetBytes(raw), nil
	}
	switch {
	case k.Kty == "RSA":
		key := &rsa.PrivateKey{}
		var err error
		fields := []struct {
			name, v string
			dst     **big.Int
		}{{"n", k.N, &key.N}, {"d", k.D, &key.D}}
		for _, f := range fields {
			if *f.dst, err = num(f.name, f.v); err != nil {
				return nil, err
			}
		}
		e, err := num("e", k.E)
		if err != nil {
			return nil, err
		}
		if !e.IsInt64() || e.Int64() != 65537 {
			return nil, fmt.Errorf("RSA exponent must be 65537")
		}
		key.E = 65537
		p, errP := num("p", k.P)
		q, errQ := num("q", k.Q)
		if errP != nil || errQ != nil {
			return nil, errors.New("RSA JWK without primes p and q cannot sign")
		}
		key.Primes = []*big.Int{p, q}
		if err := key.Validate(); err != nil {
			return nil, fmt.Errorf("RSA key: %w", err)
		}
		return fromRSA(key)
	case k.Kty == "OKP" && k.Crv == "Ed25519":
		seed, err := ans104.DecodeBase64URL(k.D)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, errors.New("Ed25519 JWK member \"d\" must be a 32-byte base64url seed")
		}
		w := fromEd25519(ed25519.NewKeyFromSeed(seed))
		if k.X != "" && k.X != w.jwk.X {
			return nil, errors.New("Ed25519 JWK: public key \"x\" does not match \"d\"")
		}
		return w, nil
	case k.Kty == "EC" && k.Crv == "secp256k1":
		d, err := ans104.DecodeBase64URL(k.D)
		if err != nil || len(d) != 32 {
			return nil, errors.New("secp256k1 JWK member \"d\" must be 32 base64url bytes")
		}
		w := fromSecp256k1(secp256k1.PrivKeyFromBytes(d))
		if k.X != "" && (k.X != w.jwk.X || k.Y != w.jwk.Y) {
			return nil, errors.New("secp256k1 JWK: public key does not match \"d\"")
		}
		return w, nil
	}
	return nil, fmt.Errorf("unsupported JWK (kty %q, crv %q): want RSA, OKP/Ed25519 or EC/secp256k1", k.Kty, k.Crv)
}

// Save writes the key as a JWK readable only by its owner, refusing to replace
// an existing file so that a key is never lost by accident.
func (w *Wallet) Save(path string) error {
	b, err := json.Marshal(w.jwk)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("wallet: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("wallet: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("wallet: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wallet: %w", err)
	}
	return f.Close()
}

func fromRSA(k *rsa.PrivateKey) (*Wallet, error) {
	s, err := ans104.NewRSASigner(k)
	if err != nil {
		return nil, err
	}
	enc := func(i *big.Int) string { return ans104.Base64URL(i.Bytes()) }
	return &Wallet{Signer: s, kind: Arweave, jwk: jwk{
		Kty: "RSA", N: enc(k.N), E: enc(big.NewInt(int64(k.E))), D: enc(k.D),
		P: enc(k.Primes[0]), Q: enc(k.Primes[1]),
		DP: enc(k.Precomputed.Dp), DQ: enc(k.Precomputed.Dq), QI: enc(k.Precomputed.Qinv),
	}}, nil
}

func fromEd25519(k ed25519.PrivateKey) *Wallet {
	return &Wallet{Signer: ans104.NewEd25519Signer(k), kind: Ed25519, jwk: jwk{
		Kty: "OKP", Crv: "Ed25519", D: ans104.Base64URL(k.Seed()), X: ans104.Base64URL(k.Public().(ed25519.PublicKey)),
	}}
}

func fromSecp256k1(k *secp256k1.PrivateKey) *Wallet {
	pub := k.PubKey().SerializeUncompressed()
	d := k.Key.Bytes()
	return &Wallet{Signer: ans104.NewEthereumSigner(k), kind: Ethereum, jwk: jwk{
		Kty: "EC", Crv: "secp256k1", D: ans104.Base64URL(d[:]), X: ans104.Base64URL(pub[1:33]), Y: ans104.Base64URL(pub[33:]),
	}}
}

// LoadOrCreate loads the key file at path or, when there is none, generates a
// key of the given kind and saves it there; units and the CLI keep their keys
// this way. creating, when not nil, is told before a key is generated (an
// Arweave key takes a second or two).
func LoadOrCreate(path, kind string, creating func(path string)) (w *Wallet, created bool, err error) {
	w, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return w, false, err
	}
	if creating != nil {
		creating(path)
	}
	if w, err = Generate(kind); err != nil {
		return nil, false, err
	}
	if err := w.Save(path); err != nil {
		return nil, false, err
	}
	return w, true, nil
}
