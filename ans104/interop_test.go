package ans104

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

type manifestEntry struct {
	Name          string   `json:"name"`
	File          string   `json:"file"`
	SignatureType int      `json:"signatureType"`
	ID            string   `json:"id"`
	Owner         string   `json:"owner"`
	OwnerAddress  string   `json:"ownerAddress"`
	Target        string   `json:"target"`
	Anchor        string   `json:"anchor"`
	Tags          []Tag    `json:"tags"`
	DataSize      int      `json:"dataSize"`
	DeepHash      string   `json:"deepHash"`
	Valid         bool     `json:"valid"`
	Bundle        bool     `json:"bundle"`
	IDs           []string `json:"ids"`
	BundleIDs     []string `json:"bundleIds"`
}

// TestArbundlesItemsVerifyInGo reads every item arbundles@0.11.2 makes (types 1, 2,
// 3, 4 and 7; no tags, empty data, target and anchor, 128 tags, size limits,
// binary data, 10 MiB, a bundle of 100) and checks it field by field.
func TestArbundlesItemsVerifyInGo(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test")
	}
	out := t.TempDir()
	interop.Node(t, "gen.js", out)
	var manifest []manifestEntry
	raw, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	types := map[int]int{}
	for _, m := range manifest {
		t.Run(m.Name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(out, m.File))
			if err != nil {
				t.Fatal(err)
			}
			if m.Bundle {
				items, err := ParseBundle(b)
				if err != nil {
					t.Fatal(err)
				}
				checkIDs(t, items, m.IDs)
				return
			}
			d, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Verify(); err != nil {
				t.Fatalf("arbundles says valid=%v, Go: %v", m.Valid, err)
			}
			if err := d.CheckStrict(); err != nil {
				t.Errorf("strict: %v", err)
			}
			types[m.SignatureType]++
			mh := d.SigningMessage()
			for _, c := range []struct{ what, got, want string }{
				{"id", d.ID(), m.ID},
				{"type", fmt.Sprint(int(d.Type)), fmt.Sprint(m.SignatureType)},
				{"owner", Base64URL(d.Owner), m.Owner},
				{"ownerAddress", d.OwnerAddress(), m.OwnerAddress},
				{"target", Base64URL(d.Target), m.Target},
				{"anchor", Base64URL(d.Anchor), m.Anchor},
				{"tags", fmt.Sprint(d.Tags), fmt.Sprint(m.Tags)},
				{"dataSize", fmt.Sprint(len(d.Data)), fmt.Sprint(m.DataSize)},
				{"deepHash", hex.EncodeToString(mh[:]), m.DeepHash},
			} {
				if c.got != c.want {
					t.Errorf("%s: Go %q, arbundles %q", c.what, trunc(c.got), trunc(c.want))
				}
			}
			if !bytes.Equal(d.Marshal(), b) {
				t.Error("re-serialized item differs from arbundles' bytes")
			}
			// Deterministic signers with the same keys must reproduce arbundles' bytes.
			var s Signer
			switch d.Type {
			case TypeEd25519:
				s = NewEd25519Signer(edKey())
			case TypeEthereum:
				s = NewEthereumSigner(ethKey())
			case TypeSolana:
				s = solanaSigner{edKey()}
			case TypeTypedEthereum:
				s = typedEthSigner{ethKey()}
			}
			if s != nil {
				again, err := Sign(s, d.Data, Options{Target: d.Target, Anchor: d.Anchor, Tags: d.Tags})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again.Bytes(), b) {
					t.Error("signing the same content in Go does not reproduce arbundles' bytes")
				}
			}
			if m.BundleIDs != nil {
				if !d.IsBundle() {
					t.Fatal("bundle item lacks Bundle-Format/Bundle-Version tags")
				}
				items, err := ParseBundle(d.Data)
				if err != nil {
					t.Fatal(err)
				}
				checkIDs(t, items, m.BundleIDs)
			}
		})
	}
	for _, typ := range []int{1, 2, 3, 4, 7} {
		if types[typ] < 9 {
			t.Errorf("only %d arbundles items of type %d", types[typ], typ)
		}
	}
}

func checkIDs(t *testing.T, items []*DataItem, want []string) {
	t.Helper()
	if len(items) != len(want) || len(want) == 0 {
		t.Fatalf("%d items, arbundles lists %d", len(items), len(want))
	}
	for i, it := range items {
		if it.ID() != want[i] {
			t.Errorf("item %d id %s, arbundles %s", i, it.ID(), want[i])
		}
		if err := it.Verify(); err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

type verifyLine struct {
	File          string   `json:"file"`
	Valid         bool     `json:"valid"`
	ID            string   `json:"id"`
	SignatureType int      `json:"signatureType"`
	OwnerAddress  string   `json:"ownerAddress"`
	IDs           []string `json:"ids"`
	Error         string   `json:"error"`
}

// TestGoItemsVerifyInArbundles signs items in Go for every signature type and
// case, and has arbundles verify them and a tampered copy of each.
func TestGoItemsVerifyInArbundles(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test")
	}
	dir := t.TempDir()
	bin := make([]byte, 4096)
	rand.Read(bin)
	target := make([]byte, 32)
	rand.Read(target)
	tags128 := make([]Tag, 128)
	for i := range tags128 {
		tags128[i] = Tag{fmt.Sprintf("T%d", i), fmt.Sprintf("v%d", i)}
	}
	cases := []struct {
		name string
		data []byte
		opts Options
	}{
		{"notags", []byte("hello"), Options{}},
		{"emptydata", nil, Options{Tags: []Tag{{"Data-Protocol", "ao"}, {"Type", "Message"}}}},
		{"target-anchor", []byte("x"), Options{Target: target, Anchor: []byte("00000000000000000000000000000001"), Tags: vecTags}},
		{"target-only", []byte("x"), Options{Target: target}},
		{"anchor-only", []byte("x"), Options{Anchor: target}},
		{"tags128", []byte("x"), Options{Tags: tags128}},
		{"maxname", []byte("x"), Options{Tags: []Tag{{strings.Repeat("n", 1024), "v"}}}},
		{"maxvalue", []byte("x"), Options{Tags: []Tag{{"n", strings.Repeat("v", 3072)}}}},
		{"binary", bin, Options{Tags: vecTags}},
	}
	want := map[string]*DataItem{}
	var files []string
	write := func(name string, d *DataItem) {
		p := filepath.Join(dir, name+".bin")
		if err := os.WriteFile(p, d.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		want[p] = d
		files = append(files, p)
		// Tamper with r of the signature and with the last byte (data, or the
		// tags or owner when there is none). Not with v of a type 7 item:
		// ethers, under arbundles, normalises it, while we require 27 or 28.
		for i, off := range []int{10, len(d.Bytes()) - 1} {
			bad := bytes.Clone(d.Bytes())
			bad[off] ^= 0x20
			p = filepath.Join(dir, fmt.Sprintf("%s.tampered%d.bin", name, i))
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
	}
	var bundled []*DataItem
	big := make([]byte, 10<<20)
	rand.Read(big)
	for _, s := range signers(t) {
		for _, c := range cases {
			d, err := Sign(s, c.data, c.opts)
			if err != nil {
				t.Fatalf("%s %s: %v", s.Type(), c.name, err)
			}
			write(fmt.Sprintf("t%d-%s", s.Type(), c.name), d)
			if s.Type() <= TypeEthereum {
				bundled = append(bundled, d)
			}
		}
		if s.Type() <= TypeEd25519 {
			d, err := Sign(s, big, Options{Tags: vecTags})
			if err != nil {
				t.Fatal(err)
			}
			write(fmt.Sprintf("t%d-10mib", s.Type()), d)
		}
	}
	for len(bundled) < 100 {
		d, err := Sign(NewEd25519Signer(edKey()), []byte(fmt.Sprint(len(bundled))), Options{Tags: []Tag{{"N", fmt.Sprint(len(bundled))}}})
		if err != nil {
			t.Fatal(err)
		}
		bundled = append(bundled, d)
	}

	for _, line := range bytes.Split(bytes.TrimSpace(interop.Node(t, "verify.js", files...)), []byte("\n")) {
		var v verifyLine
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		d, ok := want[v.File]
		switch {
		case !ok && v.Valid:
			t.Errorf("arbundles accepts tampered %s", filepath.Base(v.File))
		case ok && !v.Valid:
			t.Errorf("arbundles rejects %s: %s", filepath.Base(v.File), v.Error)
		case ok && (v.ID != d.ID() || v.OwnerAddress != d.OwnerAddress() || v.SignatureType != int(d.Type)):
			t.Errorf("%s: arbundles reads id %s addr %s type %d", filepath.Base(v.File), v.ID, v.OwnerAddress, v.SignatureType)
		}
		delete(want, v.File)
	}
	if len(want) != 0 {
		t.Errorf("arbundles reported nothing for %d files", len(want))
	}

	bp := filepath.Join(dir, "bundle100.bin")
	if err := os.WriteFile(bp, BuildBundle(bundled[:100]), 0o644); err != nil {
		t.Fatal(err)
	}
	var v verifyLine
	if err := json.Unmarshal(interop.Node(t, "verify.js", "--bundle", bp), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Valid || len(v.IDs) != 100 {
		t.Fatalf("arbundles bundle verify: %+v", v)
	}
	for i, id := range v.IDs {
		if id != bundled[i].ID() {
			t.Fatalf("bundle item %d: arbundles id %s, Go %s", i, id, bundled[i].ID())
		}
	}
}
