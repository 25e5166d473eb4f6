package wasmbin

import (
	"errors"
	"fmt"
)

// reader walks a byte slice, reporting errors with absolute file offsets.
type reader struct {
	b    []byte
	pos  int
	base int // file offset of b[0]
}

// DecodeError is a malformed or unsupported binary, located by its byte
// offset in the input.
type DecodeError struct {
	Offset int
	Msg    string
}

func (e *DecodeError) Error() string { return fmt.Sprintf("wasmbin: offset %#x: %s", e.Offset, e.Msg) }

// ErrUnknownOpcode is matched (errors.Is) by decode errors for opcodes this
// package does not know.
var ErrUnknownOpcode = errors.New("unknown opcode")

type unknownOpError struct{ DecodeError }

func (e *unknownOpError) Is(target error) bool { return target == ErrUnknownOpcode }

func (r *reader) fail(at int, format string, args ...any) error {
	return &DecodeError{Offset: r.base + at, Msg: fmt.Sprintf(format, args...)}
}

func (r *reader) eof() bool { return r.pos >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, r.fail(r.pos, "unexpected end")
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.pos) {
		return nil, r.fail(r.pos, "length %d exceeds the %d remaining bytes", n, len(r.b)-r.pos)
	}
	b := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// leb reads an unsigned LEB128 of at most maxBits bits (the last byte's
// unused bits must be zero, as the spec requires).
func (r *reader) leb(maxBits uint) (uint64, error) {
	start := r.pos
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= maxBits {
			return 0, r.fail(start, "LEB128 longer than %d bits", maxBits)
		}
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if rest := maxBits - shift; rest < 7 && c&0x7f>>rest != 0 {
			return 0, r.fail(start, "LEB128 overflows %d bits", maxBits)
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

// sleb reads a signed LEB128 of at most maxBits bits.
func (r *reader) sleb(maxBits uint) (int64, error) {
	start := r.pos
	var v int64
	for shift := uint(0); ; shift += 7 {
		if shift >= maxBits {
			return 0, r.fail(start, "signed LEB128 longer than %d bits", maxBits)
		}
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			if rest := maxBits - shift; rest < 7 {
				// The unused bits must all equal the sign bit.
				hi := int8(c<<1) >> rest // the top value bit and those above it
				if hi != 0 && hi != -1 {
					return 0, r.fail(start, "signed LEB128 overflows %d bits", maxBits)
				}
			}
			if shift+7 < 64 && c&0x40 != 0 {
				v |= -1 << (shift + 7)
			}
			return v, nil
		}
	}
}

func (r *reader) u32() (uint32, error) {
	v, err := r.leb(32)
	return uint32(v), err
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(uint64(n))
	return string(b), err
}

// count reads a vector length, rejecting lengths that cannot fit in the
// remaining bytes (each element takes at least min bytes), so hostile input
// cannot make us allocate much.
func (r *reader) count(min int) (uint32, error) {
	at := r.pos
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(min) > uint64(len(r.b)-r.pos) {
		return 0, r.fail(at, "vector of %d elements exceeds the %d remaining bytes", n, len(r.b)-r.pos)
	}
	return n, nil
}

// appendLEB appends the minimal unsigned LEB128 encoding of v.
func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// appendLEBWidth encodes v in exactly width bytes when it fits (emscripten's
// linker pads some LEBs to 5 bytes), else minimally.
func appendLEBWidth(b []byte, v uint64, width int) []byte {
	if width <= 1 || lebLen(v) > width {
		return appendLEB(b, v)
	}
	for i := 0; i < width-1; i++ {
		b = append(b, byte(v&0x7f)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func lebLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendSLEB appends the minimal signed LEB128 encoding of v.
func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendLEB(b, uint64(len(s)))
	return append(b, s...)
}
