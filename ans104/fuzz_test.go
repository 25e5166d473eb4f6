package ans104

import (
	"bytes"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(mustB64(f, vecEthItem))
	f.Add(mustB64(f, vecEdItem))
	f.Add(mustHex(f, vecMinimal))
	f.Add(rawItem(f, NewEd25519Signer(edKey()), mustHex(f, "01080261026200"), 1, []byte("d")))
	d, _ := Sign(NewEd25519Signer(edKey()), []byte("x"), Options{Target: make([]byte, 32), Anchor: make([]byte, 32), Tags: vecTags})
	f.Add(d.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		// A parsed item re-serializes to exactly its input, and checking it never panics.
		if !bytes.Equal(d.Marshal(), b) {
			t.Fatalf("Marshal differs from input")
		}
		_ = d.Verify()
		_ = d.CheckStrict()
		_ = d.ID()
	})
}

func FuzzDecodeTags(f *testing.F) {
	f.Add(mustHex(f, vecTagsHex))
	f.Add(mustHex(f, "01080261026200"))
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte{})
	f.Add(mustHex(f, "feffffffffffffffff01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tags, err := DecodeTags(b)
		if err != nil {
			return
		}
		// Whatever decodes, re-encodes to something that decodes to the same tags.
		again, err := DecodeTags(EncodeTags(tags))
		if err != nil || len(again) != len(tags) {
			t.Fatalf("re-encoded tags do not decode: %v", err)
		}
		for i := range tags {
			if tags[i] != again[i] {
				t.Fatalf("tag %d changed", i)
			}
		}
	})
}

func FuzzParseBundle(f *testing.F) {
	a, _ := Parse(mustB64(f, vecEthItem))
	b, _ := Parse(mustB64(f, vecEdItem))
	f.Add(BuildBundle([]*DataItem{a, b}))
	f.Add(BuildBundle(nil))
	f.Add(make([]byte, 96))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := ParseBundle(data)
		if err != nil {
			return
		}
		if !bytes.Equal(BuildBundle(items), data) {
			t.Fatal("rebuilt bundle differs from input")
		}
	})
}
