package wasm

import (
	"context"
	"math"

	"github.com/tetratelabs/wazero/api"
)

// Host functions whose wasm64 form (wasm64-unknown-emscripten-draft_2024_02_15,
// runtime.md §5.2) differs from the wasm32 one by more than the width of
// pointer arguments: struct layouts with 8-byte longs and pointers, i64
// time_t and size_t results. Pointer-only differences are handled in host.go
// by reading every pointer argument through ptr, which accepts both widths.

// either tries each implementation in turn: an import name is served by the
// one that accepts the module's declared signature.
func either(fs ...hostFn) hostFn {
	return func(d importFunc) hostFunc {
		for _, f := range fs {
			if g := f(d); g != nil {
				return g
			}
		}
		return nil
	}
}

// exact wraps an implementation of one exact signature, written in emscripten's
// letters: i = i32, j = i64, d = f64.
func exact(params, results string, f hostFunc) hostFn {
	types := func(s string) []api.ValueType {
		t := make([]api.ValueType, len(s))
		for i, c := range s {
			switch c {
			case 'i':
				t[i] = api.ValueTypeI32
			case 'j':
				t[i] = api.ValueTypeI64
			case 'd':
				t[i] = api.ValueTypeF64
			default:
				panic("wasm: bad signature letter " + string(c))
			}
		}
		return t
	}
	p, r := types(params), types(results)
	return func(d importFunc) hostFunc {
		if !is(d, p, r...) {
			return nil
		}
		return zext(p, f)
	}
}

// wasm64 struct tm: nine ints, then long tm_gmtoff at 40 and the tm_zone
// pointer at 48.
func readTm64(mem linearMemory, p uint32) tm {
	f := func(i uint32) int32 { x, _ := mem.ReadUint32Le(p + 4*i); return int32(x) }
	v := tm{sec: f(0), min: f(1), hour: f(2), mday: f(3), mon: f(4), year: f(5),
		wday: f(6), yday: f(7), isdst: f(8)}
	off, _ := mem.ReadUint64Le(p + 40)
	v.gmtoff = int32(int64(off))
	if z, _ := mem.ReadUint64Le(p + 48); z != 0 {
		v.zone = cString(mem, ptr(z))
	}
	return v
}

// tzset64: long *timezone (8 bytes), int *daylight, two 17-byte names.
func tzset64(_ context.Context, v *vm, stack []uint64) {
	mem := v.mem
	mem.WriteUint64Le(ptr(stack[0]), 0)
	mem.WriteUint32Le(ptr(stack[1]), 0)
	writeCString(mem, ptr(stack[2]), "UTC", 17)
	writeCString(mem, ptr(stack[3]), "UTC", 17)
}

// timeToTm64 implements _gmtime_js/_localtime_js (i64 time_t, tm*): gmtime
// writes tm_sec … tm_yday; localtime also tm_isdst and the 8-byte tm_gmtoff.
func timeToTm64(local bool) hostFunc {
	return func(_ context.Context, v *vm, stack []uint64) {
		t := int64(stack[0])
		if t < -(1<<53) || t > 1<<53 {
			t = math.MaxInt64 // bigintToI53Checked: NaN, so NaN fields
		}
		tv, _ := gmtime(t)
		mem := v.mem
		p := ptr(stack[1])
		writeTm(mem, p, tv, 8)
		if local {
			mem.WriteUint32Le(p+32, uint32(tv.isdst))
			mem.WriteUint64Le(p+40, uint64(int64(tv.gmtoff)))
		}
	}
}

// mktime64 returns time_t as an i64 (no tempret side channel on wasm64).
func mktime64(_ context.Context, v *vm, stack []uint64) {
	mem := v.mem
	p := ptr(stack[0])
	tv := readTm64(mem, p)
	t := mktime(&tv)
	writeTm(mem, p, tv, 9)
	stack[0] = uint64(t)
}

func strftime64(_ context.Context, v *vm, stack []uint64) {
	mem := v.mem
	s, maxsize, format, tp := ptr(stack[0]), stack[1], ptr(stack[2]), ptr(stack[3])
	tv := readTm64(mem, tp)
	out := strftime(cString(mem, format), &tv)
	if uint64(len(out))+1 > maxsize {
		stack[0] = 0
		return
	}
	mem.Write(s, append([]byte(out), 0))
	stack[0] = uint64(len(out))
}

// fdSync: nothing to flush; unknown descriptors are EBADF as in the FS.
func fdSync(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[0])
	if isStd(fd) || v.files[fd] != nil {
		stack[0] = 0
		return
	}
	stack[0] = errnoBADF
}

// fdFdstatGet reports the standard streams as character devices (the
// emscripten TTYs) and drive files as regular files, with no rights.
func fdFdstatGet(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[0])
	var typ byte
	switch {
	case isStd(fd):
		typ = 2
	case v.files[fd] != nil:
		typ = 4
	default:
		stack[0] = errnoBADF
		return
	}
	mem := v.mem
	p := ptr(stack[1])
	mem.Write(p, []byte{typ})
	mem.WriteUint16Le(p+2, 0)
	mem.WriteUint64Le(p+8, 0)
	mem.WriteUint64Le(p+16, 0)
	stack[0] = 0
}

// getcwd: the working directory is "/", as in the emscripten FS.
func getcwd(_ context.Context, v *vm, stack []uint64) {
	buf, size := ptr(stack[0]), stack[1]
	switch {
	case size == 0:
		stack[0] = ret(-errnoINVAL)
	case size < 2:
		stack[0] = ret(-errnoRANGE)
	default:
		v.mem.Write(buf, []byte{'/', 0})
		stack[0] = 2
	}
}

// munmap (addr, len, prot, flags, fd, offset): drive mappings are read-only
// copies, so there is nothing to write back.
func munmap(ctx context.Context, v *vm, stack []uint64) {
	fd := s32(stack[4])
	if isStd(fd) || v.files[fd] != nil {
		stack[0] = 0
		return
	}
	stack[0] = ret(-errnoBADF)
}
