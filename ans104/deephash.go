package ans104

import (
	"crypto/sha512"
	"fmt"
	"io"
	"strconv"
)

// DeepHash computes the Arweave 2.0 deep hash (SHA-384) of v, which must be a
// []byte, a string (its bytes) or a []any of such values, nested to any depth.
// Any other type is a programming error and panics.
func DeepHash(v any) [48]byte {
	switch x := v.(type) {
	case []byte:
		return deepHashBlob(x)
	case string:
		return deepHashBlob([]byte(x))
	case []any:
		parts := make([][48]byte, len(x))
		for i, e := range x {
			parts[i] = DeepHash(e)
		}
		return deepHashList(parts...)
	default:
		panic(fmt.Sprintf("ans104.DeepHash: unsupported type %T", v))
	}
}

// DeepHashReader returns the deep hash of the blob read from r, streaming it so
// that large payloads never need to be held in memory.
func DeepHashReader(r io.Reader) ([48]byte, int64, error) {
	h := sha512.New384()
	n, err := io.Copy(h, r)
	if err != nil {
		return [48]byte{}, n, err
	}
	var inner [48]byte
	h.Sum(inner[:0])
	return blobFromInner(n, inner), n, nil
}

func deepHashBlob(b []byte) [48]byte {
	return blobFromInner(int64(len(b)), sha512.Sum384(b))
}

// blobFromInner finishes a blob hash from the blob's length and its SHA-384.
func blobFromInner(n int64, inner [48]byte) [48]byte {
	var buf [4 + 20]byte
	tag := sha512.Sum384(strconv.AppendInt(append(buf[:0], "blob"...), n, 10))
	var pair [96]byte
	copy(pair[:48], tag[:])
	copy(pair[48:], inner[:])
	return sha512.Sum384(pair[:])
}

func deepHashList(parts ...[48]byte) [48]byte {
	var buf [4 + 20]byte
	acc := sha512.Sum384(strconv.AppendInt(append(buf[:0], "list"...), int64(len(parts)), 10))
	var pair [96]byte
	for _, p := range parts {
		copy(pair[:48], acc[:])
		copy(pair[48:], p[:])
		acc = sha512.Sum384(pair[:])
	}
	return acc
}
