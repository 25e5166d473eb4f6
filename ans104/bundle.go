package ans104

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Tags that mark a data item (or L1 transaction) whose data is a bundle.
var BundleTags = []Tag{{Name: "Bundle-Format", Value: "binary"}, {Name: "Bundle-Version", Value: "2.0.0"}}

// IsBundle reports whether the item's tags declare its data to be a binary bundle.
func (d *DataItem) IsBundle() bool {
	f, _ := d.Tag("Bundle-Format")
	v, _ := d.Tag("Bundle-Version")
	return f == "binary" && v == "2.0.0"
}

// HeaderIDError reports a bundle whose header id for an item differs from the
// item's own id. arbundles accepts such bundles; we do not, since the header is
// how readers index the bundle.
type HeaderIDError struct {
	Index        int
	Header, Item string
}

func (e *HeaderIDError) Error() string {
	return fmt.Sprintf("ans104: bundle item %d: header id %s does not match item id %s", e.Index, e.Header, e.Item)
}

// ParseBundle splits a binary bundle (ANS-104 §10) into its data items. It checks
// the header bounds and that every header id is the id of its item; it does not
// verify the items' signatures.
func ParseBundle(b []byte) ([]*DataItem, error) {
	bad := func(format string, args ...any) ([]*DataItem, error) {
		return nil, fmt.Errorf("ans104: malformed bundle: "+format, args...)
	}
	count, err := u256(b, 0)
	if err != nil {
		return bad("item count: %v", err)
	}
	if count > uint64(len(b)-32)/64 {
		return bad("%d items declared but the bundle has room for %d headers", count, (len(b)-32)/64)
	}
	off := 32 + int(count)*64
	items := make([]*DataItem, 0, count)
	for i := range int(count) {
		h := 32 + i*64
		size, err := u256(b, h)
		if err != nil {
			return bad("item %d size: %v", i, err)
		}
		if size > uint64(len(b)-off) {
			return bad("item %d is %d bytes but only %d remain", i, size, len(b)-off)
		}
		item, err := Parse(b[off : off+int(size) : off+int(size)])
		if err != nil {
			return bad("item %d: %v", i, err)
		}
		if id := item.RawID(); !bytes.Equal(id[:], b[h+32:h+64]) {
			return nil, &HeaderIDError{Index: i, Header: Base64URL(b[h+32 : h+64]), Item: Base64URL(id[:])}
		}
		items = append(items, item)
		off += int(size)
	}
	if off != len(b) {
		return bad("%d trailing bytes after the last item", len(b)-off)
	}
	return items, nil
}

// u256 reads a little-endian u256 that must fit in 63 bits.
func u256(b []byte, off int) (uint64, error) {
	if len(b)-off < 32 {
		return 0, fmt.Errorf("truncated at byte %d", off)
	}
	for _, c := range b[off+8 : off+32] {
		if c != 0 {
			return 0, fmt.Errorf("value at byte %d does not fit in 64 bits", off)
		}
	}
	v := binary.LittleEndian.Uint64(b[off:])
	if v > 1<<62 {
		return 0, fmt.Errorf("value %d at byte %d is out of range", v, off)
	}
	return v, nil
}

// BuildBundle serializes signed items into a binary bundle.
func BuildBundle(items []*DataItem) []byte {
	n := 32 + 64*len(items)
	for _, it := range items {
		n += len(it.raw)
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, uint64(len(items)))
	off := 32 + 64*len(items)
	for i, it := range items {
		h := b[32+64*i:]
		binary.LittleEndian.PutUint64(h, uint64(len(it.raw)))
		id := it.RawID()
		copy(h[32:64], id[:])
		off += copy(b[off:], it.raw)
	}
	return b
}
