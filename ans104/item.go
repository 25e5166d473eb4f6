package ans104

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// DataItem is a parsed ANS-104 data item: a view over the serialized bytes. The
// slices point into the buffer given to Parse; nothing is copied.
type DataItem struct {
	Type      SignatureType
	Signature []byte
	Owner     []byte
	Target    []byte // nil, or 32 raw bytes
	Anchor    []byte // nil, or 32 raw bytes
	Tags      []Tag
	RawTags   []byte // the tag bytes exactly as stored (the signature covers these)
	Data      []byte

	raw []byte
}

// MinItemSize is the smallest buffer arbundles considers a data item.
const MinItemSize = 80

// ParseError reports bytes that are not a well-formed data item.
type ParseError struct {
	Offset int
	Msg    string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("ans104: malformed data item at byte %d: %s", e.Offset, e.Msg)
}

// Parse parses a serialized data item, accepting at most DefaultMaxTagBytes of tags.
// It checks the layout only; call Verify for the signature.
func Parse(b []byte) (*DataItem, error) { return ParseLimit(b, DefaultMaxTagBytes) }

// ParseLimit is Parse with a caller-chosen cap on the tag section, checked before
// anything is allocated.
func ParseLimit(b []byte, maxTagBytes int) (*DataItem, error) {
	bad := func(off int, format string, args ...any) (*DataItem, error) {
		return nil, &ParseError{Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	if len(b) < 2 {
		return bad(0, "%d bytes is too short for a signature type", len(b))
	}
	t := SignatureType(binary.LittleEndian.Uint16(b))
	info, ok := sigTable[t]
	if !ok {
		return bad(0, "unknown signature type %d", uint16(t))
	}
	d := &DataItem{Type: t, raw: b}
	off := 2
	if len(b)-off < info.sigLen+info.ownerLen {
		return bad(off, "truncated signature or owner (%s needs %d bytes, %d left)", t, info.sigLen+info.ownerLen, len(b)-off)
	}
	d.Signature = b[off : off+info.sigLen]
	off += info.sigLen
	d.Owner = b[off : off+info.ownerLen]
	off += info.ownerLen
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{"target", &d.Target}, {"anchor", &d.Anchor}} {
		if off >= len(b) {
			return bad(off, "truncated before %s presence byte", f.name)
		}
		switch b[off] {
		case 0:
			off++
		case 1:
			off++
			if len(b)-off < 32 {
				return bad(off, "truncated %s", f.name)
			}
			*f.dst = b[off : off+32]
			off += 32
		default:
			return bad(off, "%s presence byte is %d, must be 0 or 1", f.name, b[off])
		}
	}
	if len(b)-off < 16 {
		return bad(off, "truncated tag header")
	}
	count := binary.LittleEndian.Uint64(b[off:])
	size := binary.LittleEndian.Uint64(b[off+8:])
	off += 16
	if size > uint64(maxTagBytes) {
		return bad(off-8, "%d tag bytes exceed the limit of %d", size, maxTagBytes)
	}
	if size > uint64(len(b)-off) {
		return bad(off-8, "%d tag bytes but only %d bytes left", size, len(b)-off)
	}
	d.RawTags = b[off : off+int(size)]
	tags, err := DecodeTags(d.RawTags)
	if err != nil {
		return bad(off, "%v", err)
	}
	if uint64(len(tags)) != count {
		return bad(off-16, "header says %d tags but %d are encoded", count, len(tags))
	}
	d.Tags = tags
	off += int(size)
	d.Data = b[off:]
	return d, nil
}

// Bytes returns the serialized item as it was parsed or signed.
func (d *DataItem) Bytes() []byte { return d.raw }

// Marshal serializes the item from its fields. For an unmodified parsed item it
// returns bytes equal to Bytes. Tags are written from RawTags, or canonically
// encoded from Tags when RawTags is nil.
func (d *DataItem) Marshal() []byte {
	rawTags := d.RawTags
	if rawTags == nil {
		rawTags = EncodeTags(d.Tags)
	}
	return appendItem(nil, d.Type, d.Signature, d.Owner, d.Target, d.Anchor, uint64(len(d.Tags)), rawTags, d.Data)
}

func appendItem(b []byte, t SignatureType, sig, owner, target, anchor []byte, tagCount uint64, rawTags, data []byte) []byte {
	n := 2 + len(sig) + len(owner) + 2 + len(target) + len(anchor) + 16 + len(rawTags) + len(data)
	b = slices.Grow(b, n)
	b = binary.LittleEndian.AppendUint16(b, uint16(t))
	b = append(b, sig...)
	b = append(b, owner...)
	b = appendOptional(b, target)
	b = appendOptional(b, anchor)
	b = binary.LittleEndian.AppendUint64(b, tagCount)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(rawTags)))
	b = append(b, rawTags...)
	return append(b, data...)
}

// RawID returns SHA-256 of the signature, the item's identity.
func (d *DataItem) RawID() [32]byte { return sha256.Sum256(d.Signature) }

// ID returns the item id: base64url (no padding) of RawID.
func (d *DataItem) ID() string { id := d.RawID(); return Base64URL(id[:]) }

// OwnerAddress returns base64url(SHA-256(owner)), the address AO and gateways use
// for every signature type.
func (d *DataItem) OwnerAddress() string { return Address(d.Owner) }

// Tag returns the value of the first tag named name, and whether there is one.
func (d *DataItem) Tag(name string) (string, bool) {
	for _, t := range d.Tags {
		if t.Name == name {
			return t.Value, true
		}
	}
	return "", false
}

// SigningMessage returns the 48-byte deep hash that the signature covers.
func (d *DataItem) SigningMessage() [48]byte {
	return signingMessage(d.Type, d.Owner, d.Target, d.Anchor, d.RawTags, deepHashBlob(d.Data))
}

func signingMessage(t SignatureType, owner, target, anchor, rawTags []byte, dataHash [48]byte) [48]byte {
	var typ [5]byte
	return deepHashList(
		deepHashBlob([]byte("dataitem")),
		deepHashBlob([]byte("1")),
		deepHashBlob(strconv.AppendUint(typ[:0], uint64(t), 10)),
		deepHashBlob(owner),
		deepHashBlob(target),
		deepHashBlob(anchor),
		deepHashBlob(rawTags),
		dataHash,
	)
}

// CheckStrict reports the first way the item breaks the standard while still
// parsing: too many tags, empty or oversized names and values, or a tag encoding
// other than the canonical one (which the ao SU rejects).
func (d *DataItem) CheckStrict() error {
	if err := checkTags(d.Tags); err != nil {
		return fmt.Errorf("ans104: %w", err)
	}
	if !isCanonical(d.RawTags, d.Tags) {
		return errors.New("ans104: tags are not in the canonical single-block encoding")
	}
	return nil
}

// Options are the optional fields of a new data item.
type Options struct {
	Target []byte // nil or 32 bytes
	Anchor []byte // nil or 32 bytes
	Tags   []Tag
}

// Sign builds and signs a new data item. Tags must satisfy the standard's limits;
// they are written in the canonical encoding.
func Sign(s Signer, data []byte, opts Options) (*DataItem, error) {
	t := s.Type()
	info, ok := sigTable[t]
	if !ok {
		return nil, fmt.Errorf("ans104: cannot sign with unknown signature type %d", uint16(t))
	}
	owner := s.Owner()
	if len(owner) != info.ownerLen {
		return nil, fmt.Errorf("ans104: %s owner is %d bytes, want %d", t, len(owner), info.ownerLen)
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"target", opts.Target}, {"anchor", opts.Anchor}} {
		if f.v != nil && len(f.v) != 32 {
			return nil, fmt.Errorf("ans104: %s must be 32 bytes, got %d", f.name, len(f.v))
		}
	}
	if err := checkTags(opts.Tags); err != nil {
		return nil, fmt.Errorf("ans104: %w", err)
	}
	rawTags := EncodeTags(opts.Tags)
	if len(rawTags) > DefaultMaxTagBytes {
		return nil, fmt.Errorf("ans104: %d tag bytes, at most %d allowed", len(rawTags), DefaultMaxTagBytes)
	}
	msg := signingMessage(t, owner, opts.Target, opts.Anchor, rawTags, deepHashBlob(data))
	sig, err := s.Sign(msg[:])
	if err != nil {
		return nil, fmt.Errorf("ans104: sign: %w", err)
	}
	if len(sig) != info.sigLen {
		return nil, fmt.Errorf("ans104: %s signer returned %d bytes, want %d", t, len(sig), info.sigLen)
	}

	return Parse(appendItem(nil, t, sig, owner, opts.Target, opts.Anchor, uint64(len(opts.Tags)), rawTags, data))
}

func appendOptional(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	return append(append(b, 1), v...)
}

// Base64URL is unpadded base64url, the text form of ids, owners and addresses.
func Base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// DecodeBase64URL decodes unpadded (or padded) base64url.
func DecodeBase64URL(s string) ([]byte, error) {
	if n := len(s); n > 0 && s[n-1] == '=' {
		return base64.URLEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// DecodeID decodes a 43-character id into its 32 raw bytes.
func DecodeID(s string) ([32]byte, error) {
	var id [32]byte
	if len(s) != 43 {
		return id, fmt.Errorf("ans104: id %q is %d characters, want 43", s, len(s))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("ans104: id %q: %w", s, err)
	}
	copy(id[:], b)
	return id, nil
}

// Address returns base64url(SHA-256(owner)).
func Address(owner []byte) string { h := sha256.Sum256(owner); return Base64URL(h[:]) }
