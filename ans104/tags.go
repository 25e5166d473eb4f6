package ans104

import (
	"bytes"
	"errors"
	"fmt"
)

// Tag is one name/value pair of a data item. Names and values hold the raw bytes
// from the item; they are normally UTF-8 but are not required to be.
type Tag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Limits of the ANS-104 standard, enforced when creating items and reported by
// DataItem.CheckStrict when reading them.
const (
	MaxTags            = 128
	MaxTagNameBytes    = 1024
	MaxTagValueBytes   = 3072
	DefaultMaxTagBytes = 4096 // arbundles refuses to create or verify more
)

// EncodeTags returns the canonical Avro encoding of tags: one positive block
// holding every tag followed by the 0 terminator, and no bytes at all for zero
// tags. It is the only form the ao SU accepts, because the SU re-encodes tags
// before checking signatures.
func EncodeTags(tags []Tag) []byte {
	if len(tags) == 0 {
		return nil
	}
	n := 11
	for _, t := range tags {
		n += 20 + len(t.Name) + len(t.Value)
	}
	b := make([]byte, 0, n)
	b = appendLong(b, int64(len(tags)))
	for _, t := range tags {
		b = appendLong(b, int64(len(t.Name)))
		b = append(b, t.Name...)
		b = appendLong(b, int64(len(t.Value)))
		b = append(b, t.Value...)
	}
	return append(b, 0)
}

// DecodeTags decodes an Avro array of {name: bytes, value: bytes} records in any
// valid block layout (several blocks, negative counts with a byte size), as
// arbundles does. An empty input is zero tags.
func DecodeTags(b []byte) ([]Tag, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var tags []Tag
	r := avroReader{b: b}
	for {
		count, err := r.long()
		if err != nil {
			return nil, fmt.Errorf("tag block count: %w", err)
		}
		if count == 0 {
			break
		}
		if count < 0 {
			if count == minInt64 {
				return nil, errors.New("tag block count out of range")
			}
			count = -count
			if _, err := r.long(); err != nil { // block byte size, not needed
				return nil, fmt.Errorf("tag block size: %w", err)
			}
		}
		// Each record takes at least two bytes, which bounds the allocation.
		if count > int64(len(b)-r.off)/2 {
			return nil, fmt.Errorf("tag block count %d exceeds the %d remaining bytes", count, len(b)-r.off)
		}
		if tags == nil {
			tags = make([]Tag, 0, count)
		}
		for range count {
			name, err := r.bytes()
			if err != nil {
				return nil, fmt.Errorf("tag %d name: %w", len(tags), err)
			}
			value, err := r.bytes()
			if err != nil {
				return nil, fmt.Errorf("tag %d value: %w", len(tags), err)
			}
			tags = append(tags, Tag{Name: string(name), Value: string(value)})
		}
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%d trailing bytes after tags", len(b)-r.off)
	}
	return tags, nil
}

// checkTags enforces the creation limits of the standard.
func checkTags(tags []Tag) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%d tags, at most %d allowed", len(tags), MaxTags)
	}
	for i, t := range tags {
		switch {
		case t.Name == "":
			return fmt.Errorf("tag %d: empty name", i)
		case t.Value == "":
			return fmt.Errorf("tag %d (%q): empty value", i, t.Name)
		case len(t.Name) > MaxTagNameBytes:
			return fmt.Errorf("tag %d: name is %d bytes, at most %d allowed", i, len(t.Name), MaxTagNameBytes)
		case len(t.Value) > MaxTagValueBytes:
			return fmt.Errorf("tag %d (%q): value is %d bytes, at most %d allowed", i, t.Name, len(t.Value), MaxTagValueBytes)
		}
	}
	return nil
}

// isCanonical reports whether raw is exactly the canonical encoding of tags.
func isCanonical(raw []byte, tags []Tag) bool {
	return bytes.Equal(raw, EncodeTags(tags))
}

const minInt64 = -1 << 63

func appendLong(b []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

type avroReader struct {
	b   []byte
	off int
}

var errShort = errors.New("unexpected end of tag bytes")

func (r *avroReader) long() (int64, error) {
	var u uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if r.off >= len(r.b) {
			return 0, errShort
		}
		c := r.b[r.off]
		r.off++
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, errors.New("varint longer than 10 bytes")
}

func (r *avroReader) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(r.b)-r.off) {
		return nil, fmt.Errorf("length %d out of range", n)
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}
