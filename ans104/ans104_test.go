package ans104

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Vectors from the protocol reference (shared/spec/ans104.md §12), produced by arbundles 0.11.2.
const (
	vecEthItem = "AwCrsPbVUXajRuGFWi86mqYB5ESZrVguPyI/c3XZCleWDx7++Pug3FY/WFQGViE7sLru+7NKfbvppwc6/ebEhFAIGwRPNVvct8wK9yjvPM65YV2QaEu1sspfhZqw8LcEB1hxqjhbaxuOrYCcpnRU2Wg/zyugNFbW/ixKvisH8PvbsvHBAAADAAAAAAAAADYAAAAAAAAABhpEYXRhLVByb3RvY29sBGFvCFR5cGUOTWVzc2FnZRRVbmljb2RlLcO8FHbDpGx1ZSDinJMAaGVsbG8gYW8="
	vecEdItem  = "AgD9WtOQqIWUTdmlLOLjQw0jU+W98VDyGgaMHkUSoQBBNRZTu40dS2kcfd5o3XpfeycAdJq4yxXR8yi98bRbSH8M6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iwAAAMAAAAAAAAANgAAAAAAAAAGGkRhdGEtUHJvdG9jb2wEYW8IVHlwZQ5NZXNzYWdlFFVuaWNvZGUtw7wUdsOkbHVlIOKckwBoZWxsbyBhbw=="
	vecMinimal = "0200d7aae9b9aaa562eb8ed44ca36c38e3f3c8232e8de6f85da3ae349d8e3318934022c2161150fda0cffa76766cf52a3e42f9847a77951287373f9dea38e885400eea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c000000000000000000000000000000000000"
	vecTagsHex = "061a446174612d50726f746f636f6c04616f08547970650e4d65737361676514556e69636f64652dc3bc1476c3a46c756520e29c9300"
)

var vecTags = []Tag{{"Data-Protocol", "ao"}, {"Type", "Message"}, {"Unicode-ü", "välue ✓"}}

func mustB64(t testing.TB, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ethKey() *secp256k1.PrivateKey {
	return secp256k1.PrivKeyFromBytes(bytes.Repeat([]byte{0x11}, 32))
}

func edKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)) }

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSASigner(t testing.TB) *RSASigner {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 4096)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	s, err := NewRSASigner(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// solanaSigner and typedEthSigner produce types we only need to verify, so they live in tests.
type solanaSigner struct{ key ed25519.PrivateKey }

func (s solanaSigner) Type() SignatureType { return TypeSolana }
func (s solanaSigner) Owner() []byte       { return s.key.Public().(ed25519.PublicKey) }
func (s solanaSigner) Sign(m []byte) ([]byte, error) {
	return ed25519.Sign(s.key, []byte(hex.EncodeToString(m))), nil
}

type typedEthSigner struct{ key *secp256k1.PrivateKey }

func (s typedEthSigner) Type() SignatureType { return TypeTypedEthereum }
func (s typedEthSigner) Owner() []byte {
	a, _ := EthereumAddress(s.key.PubKey().SerializeUncompressed())
	return []byte(a)
}
func (s typedEthSigner) Sign(m []byte) ([]byte, error) {
	c := ecdsa.SignCompact(s.key, eip712Digest(m, ethereumAddress(s.key.PubKey())), false)
	return append(c[1:], c[0]), nil
}

func TestDeepHashVectors(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"abc", "71115a30152ebcffb6defbb643abc8ef76f01fe323f1d62340646085960f6e347cb2d8e9a46ddee655b3012c6131d4e0"},
		{[]any{}, "a69e7d37fdc7f040a9ec16aae84de24fab4a653dac4de0bd247e36bab9fe45d9289c5a04a893c95285812f5cefc9707a"},
		{[]any{"a", []any{"b", []byte("c")}}, "30bce0a753c170f214f57dd0244bc29c76526aea405cd8bff8af8301a7d10424e1c57f63ab4d55070b99f48f72a8c2e7"},
	} {
		got := DeepHash(tc.in)
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("DeepHash(%v) = %x, want %s", tc.in, got, tc.want)
		}
	}
	got, n, err := DeepHashReader(strings.NewReader("abc"))
	if err != nil || n != 3 || got != DeepHash("abc") {
		t.Errorf("DeepHashReader = %x, %d, %v", got, n, err)
	}
}

func TestTagEncoding(t *testing.T) {
	if got := hex.EncodeToString(EncodeTags(vecTags)); got != vecTagsHex {
		t.Errorf("EncodeTags = %s, want %s", got, vecTagsHex)
	}
	if got := EncodeTags(nil); len(got) != 0 {
		t.Errorf("zero tags encode to %x, want nothing", got)
	}
	if got := EncodeTags([]Tag{{}}); !bytes.Equal(got, []byte{2, 0, 0, 0}) {
		t.Errorf("empty tag encodes to %x", got)
	}
	many := make([]Tag, 200)
	for i := range many {
		many[i] = Tag{"n", "v"}
	}
	if got := EncodeTags(many); got[0] != 0x90 || got[1] != 0x03 {
		t.Errorf("200 tags prefix %x, want 9003", got[:2])
	}
	for _, tc := range []struct {
		name string
		in   string
		want []Tag
		err  bool
	}{
		{"canonical", vecTagsHex, vecTags, false},
		{"negative block", "010802610262" + "00", []Tag{{"a", "b"}}, false},
		{"two blocks", "02026102620002026302640000"[:0] + "0202610262" + "0202630264" + "00", []Tag{{"a", "b"}, {"c", "d"}}, false},
		{"empty", "", nil, false},
		{"missing terminator", "0202610262", nil, true},
		{"trailing", "020261026200ff", nil, true},
		{"length past end", "02ff01", nil, true},
		{"negative length", "020161", nil, true},
		{"huge count", "feffffffffffffffff01", nil, true},
		{"overlong varint", "ffffffffffffffffffffff01", nil, true},
		{"min int64 count", "ffffffffffffffffff01", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeTags(mustHex(t, tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSpecVectors(t *testing.T) {
	for _, tc := range []struct {
		name, raw, id, addr, deepHash string
		signer                        Signer
	}{
		{"ethereum", vecEthItem, "q9NKFW115KggOkbc5akVchYhKZZbHUEGc7KNDtn-klU", "NNfw_nr-ItK-EUBE2H-SjH-QRLDxBGluUVlIkPOMzRU",
			"d6cd3f409f57a04082d8ac24ef78f84329b612bb4c806f3c4196729bcd3ed6c425d47fb4a8b12a49626d702dfcb39ea9", NewEthereumSigner(ethKey())},
		{"ed25519", vecEdItem, "qL6qpNQVYCqBDGhOoArNGfJnhNf1BnBtXJ5zRfjbM8w", "_oEsEvOrTOasXbaaw1L5BssbEe9D-zPiUu9_9VImOIk",
			"2902e2ae135ab86833b97856b0a9479c7f0eb915175d5ad223bd5678c3f2209d69108d462b84b1def9e333feb2346974", NewEd25519Signer(edKey())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mustB64(t, tc.raw)
			d, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Verify(); err != nil {
				t.Fatal(err)
			}
			if d.ID() != tc.id || d.OwnerAddress() != tc.addr {
				t.Errorf("id %s addr %s", d.ID(), d.OwnerAddress())
			}
			if m := d.SigningMessage(); hex.EncodeToString(m[:]) != tc.deepHash {
				t.Errorf("deep hash %x", m)
			}
			if string(d.Data) != "hello ao" || fmt.Sprint(d.Tags) != fmt.Sprint(vecTags) {
				t.Errorf("data %q tags %v", d.Data, d.Tags)
			}
			if err := d.CheckStrict(); err != nil {
				t.Error(err)
			}
			// Both signers are deterministic, so signing again reproduces arbundles' bytes.
			again, err := Sign(tc.signer, []byte("hello ao"), Options{Tags: vecTags})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), raw) {
				t.Errorf("re-signed item differs from arbundles'\n got %x\nwant %x", again.Bytes(), raw)
			}
		})
	}
	raw := mustHex(t, vecMinimal)
	d, err := Parse(raw)
	if err != nil || d.Verify() != nil || d.ID() != "L4J7z72Ws21BdwRewFM9Cpb-t1m3qS5e_Ht8onMxL6I" || len(raw) != 116 {
		t.Errorf("minimal item: %v id %s", err, d.ID())
	}
	if a, _ := EthereumAddress(NewEthereumSigner(ethKey()).Owner()); a != "0x19e7e376e7c213b7e7e7e46cc70a5dd086daff2a" {
		t.Errorf("ethereum address %s", a)
	}
}

func signers(t testing.TB) []Signer {
	return []Signer{testRSASigner(t), NewEd25519Signer(edKey()), NewEthereumSigner(ethKey()), solanaSigner{edKey()}, typedEthSigner{ethKey()}}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	target := bytes.Repeat([]byte{0xaa}, 32)
	anchor := []byte("00000000000000000000000000000001")
	for _, s := range signers(t) {
		for _, opts := range []Options{
			{},
			{Target: target},
			{Anchor: anchor},
			{Target: target, Anchor: anchor, Tags: vecTags},
		} {
			for _, data := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0, 0xff}, 5000)} {
				d, err := Sign(s, data, opts)
				if err != nil {
					t.Fatalf("%s: %v", s.Type(), err)
				}
				if err := d.Verify(); err != nil {
					t.Fatalf("%s: %v", s.Type(), err)
				}
				if !bytes.Equal(d.Target, opts.Target) || !bytes.Equal(d.Anchor, opts.Anchor) || !bytes.Equal(d.Data, data) {
					t.Fatalf("%s: fields do not round-trip", s.Type())
				}
				if d.Type == TypeSolana {
					// The same signature over the raw hash (type 2 rule) must not verify.
					m := d.SigningMessage()
					if verify(TypeEd25519, d.Owner, d.Signature, m[:]) == nil {
						t.Fatal("solana signature verified as plain ed25519")
					}
				}
			}
		}
	}
}

// TestTamper flips every byte of each field and expects parsing or verification to fail.
func TestTamper(t *testing.T) {
	for _, s := range signers(t) {
		d, err := Sign(s, []byte("some data"), Options{Target: bytes.Repeat([]byte{1}, 32), Anchor: bytes.Repeat([]byte{2}, 32), Tags: vecTags})
		if err != nil {
			t.Fatal(err)
		}
		raw := d.Bytes()
		for i := 2; i < len(raw); i++ {
			b := bytes.Clone(raw)
			b[i] ^= 0x01
			if x, err := Parse(b); err == nil && x.Verify() == nil {
				t.Fatalf("%s: flipping byte %d of %d still verifies", s.Type(), i, len(raw))
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	good, err := Sign(NewEd25519Signer(edKey()), []byte("x"), Options{Tags: vecTags})
	if err != nil {
		t.Fatal(err)
	}
	raw := good.Bytes()
	tagHdr := 2 + 64 + 32 + 2 // offset of the tag count
	patch := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(raw)) }
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"one byte", []byte{1}},
		{"unknown type", patch(func(b []byte) []byte { b[0] = 9; return b })},
		{"truncated owner", raw[:50]},
		{"target presence 2", patch(func(b []byte) []byte { b[98] = 2; return b })},
		{"anchor presence 2", patch(func(b []byte) []byte { b[99] = 2; return b })},
		{"truncated tag header", raw[:tagHdr+10]},
		{"tag count mismatch", patch(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[tagHdr:], 2); return b })},
		{"tag bytes past end", patch(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[tagHdr+8:], 4000); return b })},
		{"tag bytes over limit", patch(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[tagHdr+8:], 1<<40); return b })},
		{"truncated target", raw[:2+64+32+1+10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.b); err == nil {
				t.Fatal("parsed")
			} else if !errors.As(err, new(*ParseError)) {
				t.Fatalf("error %v is not a ParseError", err)
			}
		})
	}
}

// rawItem assembles a signed item around arbitrary tag bytes, which Sign refuses to write.
func rawItem(t testing.TB, s Signer, rawTags []byte, count int, data []byte) []byte {
	m := signingMessage(s.Type(), s.Owner(), nil, nil, rawTags, deepHashBlob(data))
	sig, err := s.Sign(m[:])
	if err != nil {
		t.Fatal(err)
	}
	b := binary.LittleEndian.AppendUint16(nil, uint16(s.Type()))
	b = append(append(append(b, sig...), s.Owner()...), 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(count))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(rawTags)))
	return append(append(b, rawTags...), data...)
}

func TestStrictAndLimits(t *testing.T) {
	s := NewEd25519Signer(edKey())
	d, err := Parse(rawItem(t, s, mustHex(t, "01080261026200"), 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(); err != nil {
		t.Fatalf("negative-block item must verify: %v", err)
	}
	if d.CheckStrict() == nil {
		t.Fatal("negative-block item passes CheckStrict")
	}
	if v, _ := d.Tag("a"); v != "b" {
		t.Fatal("tag a")
	}
	empty, _ := Parse(rawItem(t, s, []byte{2, 0, 0, 0}, 1, nil))
	if empty.Verify() != nil || empty.CheckStrict() == nil {
		t.Fatal("empty tag: verify must pass, strict must fail")
	}
	big := bytes.Repeat([]byte{'v'}, 4100)
	over := rawItem(t, s, EncodeTags([]Tag{{"n", string(big)}}), 1, nil)
	if _, err := Parse(over); err == nil {
		t.Fatal("item with more than 4096 tag bytes parsed")
	}
	if d, err := ParseLimit(over, 8192); err != nil || d.Verify() != nil {
		t.Fatalf("ParseLimit with a larger cap: %v", err)
	}

	tags := func(n int, name, value string) []Tag {
		out := make([]Tag, n)
		for i := range out {
			out[i] = Tag{name, value}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"128 tags", Options{Tags: tags(128, "n", "v")}, true},
		{"129 tags", Options{Tags: tags(129, "n", "v")}, false},
		{"name 1024", Options{Tags: tags(1, strings.Repeat("n", 1024), "v")}, true},
		{"name 1025", Options{Tags: tags(1, strings.Repeat("n", 1025), "v")}, false},
		{"value 3072", Options{Tags: tags(1, "n", strings.Repeat("v", 3072))}, true},
		{"value 3073", Options{Tags: tags(1, "n", strings.Repeat("v", 3073))}, false},
		{"empty name", Options{Tags: tags(1, "", "v")}, false},
		{"empty value", Options{Tags: tags(1, "n", "")}, false},
		{"over 4096 tag bytes", Options{Tags: tags(2, strings.Repeat("n", 1000), strings.Repeat("v", 3000))}, false},
		{"short target", Options{Target: make([]byte, 31)}, false},
		{"long anchor", Options{Anchor: make([]byte, 33)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sign(s, nil, tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestEthereumRules(t *testing.T) {
	d, _ := Parse(mustB64(t, vecEthItem))
	m := d.SigningMessage()
	sig := bytes.Clone(d.Signature)
	// High-S twin of a valid signature: (r, n-s) with the other recovery byte.
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:64])
	s.Negate()
	hs := s.Bytes()
	high := append(append(bytes.Clone(sig[:32]), hs[:]...), sig[64]^1)
	for name, bad := range map[string][]byte{
		"high S":     high,
		"v = 0":      append(bytes.Clone(sig[:64]), 0),
		"v = 29":     append(bytes.Clone(sig[:64]), 29),
		"wrong v":    append(bytes.Clone(sig[:64]), sig[64]^1),
		"short":      sig[:64],
		"zero bytes": make([]byte, 65),
	} {
		if verify(TypeEthereum, d.Owner, bad, m[:]) == nil {
			t.Errorf("%s verifies", name)
		}
	}
}

func TestBundle(t *testing.T) {
	var items []*DataItem
	for i, s := range signers(t)[:3] {
		for j := range 4 {
			d, err := Sign(s, []byte(fmt.Sprintf("item %d/%d", i, j)), Options{Tags: []Tag{{"I", fmt.Sprint(i)}}})
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, d)
		}
	}
	b := BuildBundle(items)
	got, err := ParseBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(items) {
		t.Fatalf("%d items, want %d", len(got), len(items))
	}
	for i := range got {
		if got[i].ID() != items[i].ID() || got[i].Verify() != nil {
			t.Fatalf("item %d differs or fails to verify", i)
		}
	}
	if empty, err := ParseBundle(BuildBundle(nil)); err != nil || len(empty) != 0 {
		t.Fatalf("empty bundle: %v", err)
	}

	bad := bytes.Clone(b)
	bad[32+64+40] ^= 1 // second header id
	var hid *HeaderIDError
	if _, err := ParseBundle(bad); !errors.As(err, &hid) || hid.Index != 1 {
		t.Fatalf("corrupted header id: %v", err)
	}
	for name, b := range map[string][]byte{
		"truncated":       b[:len(b)-1],
		"trailing":        append(bytes.Clone(b), 0),
		"short":           b[:20],
		"count too large": func() []byte { c := bytes.Clone(b); c[0] = 0xff; return c }(),
		"high size bits":  func() []byte { c := bytes.Clone(b); c[32+20] = 1; return c }(),
	} {
		if _, err := ParseBundle(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
