package wallet

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/interop"
)

func TestGenerateSaveLoadSign(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			w, err := Generate(kind)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "sub", "key.json")
			if err := w.Save(path); err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", st.Mode().Perm())
			}
			if err := w.Save(path); err == nil {
				t.Fatal("Save replaced an existing key file")
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind() != kind || got.Address() != w.Address() || !bytes.Equal(got.Owner(), w.Owner()) {
				t.Fatalf("loaded %s %s, saved %s %s", got.Kind(), got.Address(), kind, w.Address())
			}
			d, err := ans104.Sign(got, []byte("hi"), ans104.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Verify(); err != nil {
				t.Fatal(err)
			}
			if d.OwnerAddress() != w.Address() || len(w.Address()) != 43 {
				t.Fatalf("item owner %s, wallet %s", d.OwnerAddress(), w.Address())
			}
		})
	}
}

func TestEthereumForms(t *testing.T) {
	const key = "0x1111111111111111111111111111111111111111111111111111111111111111"
	for _, in := range []string{key, key[2:], key + "\n"} {
		w, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if w.NativeAddress() != "0x19e7e376e7c213b7e7e7e46cc70a5dd086daff2a" || w.Address() != "NNfw_nr-ItK-EUBE2H-SjH-QRLDxBGluUVlIkPOMzRU" {
			t.Fatalf("addresses %s %s", w.NativeAddress(), w.Address())
		}
		j, _ := json.Marshal(w)
		again, err := Parse(j)
		if err != nil || again.Address() != w.Address() {
			t.Fatalf("JWK round trip: %v", err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	ed, _ := Generate(Ed25519)
	j, _ := json.Marshal(ed)
	mismatched := strings.Replace(string(j), `"x":"`, `"x":"A`, 1)
	for name, in := range map[string]string{
		"empty":         "",
		"garbage":       "hello",
		"short hex":     "0x1234",
		"bad json":      "{",
		"unknown kty":   `{"kty":"oct","k":"AAAA"}`,
		"rsa no primes": `{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}`,
		"rsa bad e":     `{"kty":"RSA","n":"AQAB","e":"Aw","d":"AQAB","p":"AQ","q":"AQ"}`,
		"ed short d":    `{"kty":"OKP","crv":"Ed25519","d":"AAAA"}`,
		"ed mismatch":   mismatched,
		"ec short d":    `{"kty":"EC","crv":"secp256k1","d":"AAAA"}`,
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := Generate("bitcoin"); err == nil {
		t.Error("unknown kind generated")
	}
}

// TestArweaveJWKFromNode loads a JWK made by node's crypto (as arweave-js and
// aoconnect users have), signs with it in Go, and has arbundles verify the item.
func TestArweaveJWKFromNode(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test")
	}
	out := t.TempDir()
	interop.Node(t, "gen.js", out)
	w, err := Load(filepath.Join(out, "arweave-wallet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest []struct {
		SignatureType int    `json:"signatureType"`
		OwnerAddress  string `json:"ownerAddress"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	json.Unmarshal(b, &manifest)
	for _, m := range manifest {
		if m.SignatureType == 1 && m.OwnerAddress != w.Address() {
			t.Fatalf("Go address %s, arbundles %s", w.Address(), m.OwnerAddress)
		}
	}
	d, err := ans104.Sign(w, []byte("from go"), ans104.Options{Tags: []ans104.Tag{{Name: "A", Value: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, "go.bin")
	os.WriteFile(p, d.Bytes(), 0o644)
	var v struct {
		Valid        bool   `json:"valid"`
		OwnerAddress string `json:"ownerAddress"`
		Error        string `json:"error"`
	}
	if err := json.Unmarshal(interop.Node(t, "verify.js", p), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Valid || v.OwnerAddress != w.Address() {
		t.Fatalf("arbundles: %+v", v)
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unit", "key.json")
	var told []string
	w1, created, err := LoadOrCreate(path, Ed25519, func(p string) { told = append(told, p) })
	if err != nil || !created || len(told) != 1 || told[0] != path {
		t.Fatalf("first call: created %v, told %v, %v", created, told, err)
	}
	w2, created, err := LoadOrCreate(path, Ed25519, func(p string) { told = append(told, p) })
	if err != nil || created || len(told) != 1 || w2.Address() != w1.Address() {
		t.Fatalf("second call: created %v, told %v, %v", created, told, err)
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, _, err := LoadOrCreate(path, Ed25519, nil); err == nil {
		t.Fatal("a damaged key file was replaced by a new key")
	}
}
