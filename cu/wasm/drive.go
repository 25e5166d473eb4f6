package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Arweave is what WeaveDrive (runtime.md §10) reads through. The CU
// implements it over its own gateway store; admissibility (the Attestation /
// Available checks of §10.2) is the implementation's job, which is why Data
// gets the block height of the message being evaluated.
//
// Returning an error that matches ErrNotFound makes the open fail inside the
// process (io.open returns nil), which is deterministic. Any other error is
// treated as a host failure: the message is abandoned, memory is rolled back
// and Handle returns the error, because a transient gateway problem must not
// become part of the process's history.
type Arweave interface {
	// Data opens the data of transaction or data item id (path /data/<id>).
	Data(ctx context.Context, id string, blockHeight int64) (Blob, error)
	// Tx returns the JSON served for /tx/<id>: the gateway's /tx/<id> JSON
	// plus "ownerAddress".
	Tx(ctx context.Context, id string) ([]byte, error)
	// Block returns the body served for /block/<height> (GET /block/height/<h>).
	Block(ctx context.Context, height int64) ([]byte, error)
}

// Blob is readable data of known size; *bytes.Reader and *io.SectionReader
// satisfy it.
type Blob interface {
	io.ReaderAt
	Size() int64
}

// ErrNotFound tells WeaveDrive that a file does not exist or is not
// admissible for this process; see Arweave.
var ErrNotFound = errors.New("weavedrive: not found")

// driveFile is an open WeaveDrive file in the instance's fd table.
type driveFile struct {
	blob Blob
	pos  int64
	// fromEnd is set by a seek relative to the end. In the reference that
	// seek turns the stream position into a string ("0" + "<size>", from the
	// HEAD Content-Length), so the next read asks for an invalid Range, the
	// gateway answers with the whole file, and the read gets the file from
	// offset 0. aos's On-Boot loader depends on it:
	// file:read(file:seek("end")). We read on from offset 0 likewise.
	fromEnd bool
}

type bytesBlob []byte

func (b bytesBlob) Size() int64 { return int64(len(b)) }
func (b bytesBlob) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// driveError wraps a non-deterministic drive failure so Handle can return it
// as an error instead of an evaluation result.
type driveError struct{ err error }

func (e *driveError) Error() string { return "weavedrive: " + e.err.Error() }
func (e *driveError) Unwrap() error { return e.err }

// openDrive resolves a path the way the reference drive does: /data/<id>,
// /tx/<id>, /block/<height>; everything else is not a drive file.
func (v *vm) openDrive(ctx context.Context, path, mode string) int32 {
	if v.drive == nil || strings.ContainsAny(mode, "wa+") {
		return 0 // read-only drive; no drive attached means fopen returns NULL
	}
	var blob Blob
	if v.replay != nil {
		// Rebuilding state after a failure: serve exactly what the drive
		// answered the first time, so the replay cannot diverge (or fail
		// because the gateway is down now).
		if len(*v.replay) == 0 || (*v.replay)[0].path != path {
			panic(&driveError{fmt.Errorf("replay: unexpected open of %s", path)})
		}
		blob = (*v.replay)[0].blob
		*v.replay = (*v.replay)[1:]
	} else {
		blob = v.fetch(ctx, path)
		if v.record != nil {
			*v.record = append(*v.record, driveOutcome{path, blob})
		}
	}
	if blob == nil {
		return 0
	}
	fd := int32(3) // 0-2 are the standard streams, as in the emscripten FS
	for v.files[fd] != nil {
		fd++
	}
	v.files[fd] = &driveFile{blob: blob}
	return fd
}

// driveOutcome is what one open returned (nil: no such file).
type driveOutcome struct {
	path string
	blob Blob
}

// fetch asks the Arweave backend for a drive path; nil means not a file.
func (v *vm) fetch(ctx context.Context, path string) Blob {
	parts := strings.Split(path, "/")
	if len(parts) != 3 || parts[0] != "" || parts[2] == "" {
		return nil
	}
	var (
		blob Blob
		err  error
	)
	switch parts[1] {
	case "data":
		blob, err = v.drive.Data(ctx, parts[2], v.blockHeight)
	case "tx":
		var b []byte
		if b, err = v.drive.Tx(ctx, parts[2]); err == nil {
			blob = bytesBlob(b)
		}
	case "block":
		h, perr := strconv.ParseInt(parts[2], 10, 64)
		if perr != nil || h < 0 {
			return nil
		}
		var b []byte
		if b, err = v.drive.Block(ctx, h); err == nil {
			blob = bytesBlob(b)
		}
	default:
		return nil
	}
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		panic(&driveError{fmt.Errorf("open %s: %w", path, err)})
	}
	return blob
}

// readDrive reads at the file position and advances it. (The reference
// drive re-reads /tx and /block files from offset 0 and reports the
// requested length whatever the size; we report what was read, which is what
// fread's contract needs.)
func (f *driveFile) read(p []byte) (int, error) {
	if f.fromEnd {
		f.pos, f.fromEnd = 0, false
	}
	size := f.blob.Size()
	if f.pos >= size || len(p) == 0 {
		return 0, nil
	}
	if rest := size - f.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.blob.ReadAt(p, f.pos)
	f.pos += int64(n)
	if err != nil && err != io.EOF {
		return n, &driveError{err}
	}
	return n, nil
}
