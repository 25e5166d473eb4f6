package wasm

import (
	"context"
	"fmt"
)

// Image is a memory image to restore an instance from, kept outside the Go
// heap where the platform allows it (anonymous memory with huge pages).
// Decoding a checkpoint straight into one spares the garbage collector a
// 100 MB object and the restore a page fault per 4 KiB.
type Image struct {
	b    *imageBuf
	size int
}

// maxImage is the largest linear memory (wasm32, and wasm64 lowered to it).
const maxImage = 1 << 32

// NewImage returns a zeroed image of size bytes.
func NewImage(size int) (*Image, error) {
	if size < 0 || uint64(size) > maxImage {
		return nil, fmt.Errorf("wasm: memory image of %d bytes", size)
	}
	b := &imageBuf{}
	b.grow(uint64(size), maxImage)
	return &Image{b: b, size: size}, nil
}

// Bytes returns the image, to fill in; it is valid until Free or until
// RestoreImage takes the image over.
func (im *Image) Bytes() []byte { return im.b.buf[:im.size:im.size] }

// Free releases the image.
func (im *Image) Free() { im.b.free() }

// RestoreImage is RestoreOwned for an Image: the instance takes it over
// (also when it fails), keeping it as its rollback base.
func (m *Module) RestoreImage(ctx context.Context, cfg Config, im *Image) (*Instance, error) {
	in, err := m.start(ctx, cfg, im.Bytes(), im.b)
	if err != nil {
		im.Free()
	}
	return in, err
}
