package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/aonode/aonode/cu/wasm/lower64"
	"github.com/aonode/aonode/cu/wasm/meter"
	"github.com/aonode/aonode/cu/wasm/wasmbin"
)

// rewriteOpts selects the load-time rewrites of a module binary.
type rewriteOpts struct {
	lower64 bool // memory64 → memory32 (wasm64 formats)
	fuel    bool // meter.AddFuel
}

// lowerVersion names the output of lower64.Lower in the on-disk cache; bump
// it whenever the lowering changes what it emits.
const lowerVersion = "lower64-v1"

// Rewritten binaries by input content and options. The CU compiles each
// module once and then keeps the Module, so this mostly serves repeated
// compiles of the same binary (tests, restarts of a module's runtime); it is
// kept small because every entry holds a whole binary.
var (
	rewrittenMu sync.Mutex
	rewritten   = map[rewriteKey][]byte{}
)

type rewriteKey struct {
	sum  [32]byte
	opts rewriteOpts
}

const rewrittenMax = 8

// rewrite applies the rewrites opts asks for. The lowering is done once per
// module binary: its output is kept in memory and, when cacheDir is set, on
// disk beside wazero's compilation cache, which then finds the compiled code
// of the (deterministic) rewritten bytes. The fuel instrumentation is cached
// in memory only, because package meter may change between builds.
func rewrite(bin []byte, opts rewriteOpts, cacheDir string) ([]byte, error) {
	if !opts.lower64 && !opts.fuel {
		return bin, nil
	}
	key := rewriteKey{sha256.Sum256(bin), opts}
	rewrittenMu.Lock()
	out, ok := rewritten[key]
	rewrittenMu.Unlock()
	if ok {
		return out, nil
	}
	out = bin
	if opts.lower64 {
		var err error
		if out, err = lowerCached(bin, key.sum, cacheDir); err != nil {
			return nil, err
		}
	}
	if opts.fuel {
		wm, err := wasmbin.Decode(out)
		if err != nil {
			return nil, err
		}
		if err := meter.AddFuel(wm); err != nil {
			return nil, err
		}
		out = wm.Encode()
	}
	rewrittenMu.Lock()
	if len(rewritten) >= rewrittenMax {
		for k := range rewritten { // evict any one entry
			delete(rewritten, k)
			break
		}
	}
	rewritten[key] = out
	rewrittenMu.Unlock()
	return out, nil
}

// lowerCached lowers a memory64 binary, reusing the on-disk copy of an
// earlier lowering of the same bytes.
func lowerCached(bin []byte, sum [32]byte, cacheDir string) ([]byte, error) {
	var path string
	if cacheDir != "" {
		path = filepath.Join(cacheDir, lowerVersion, hex.EncodeToString(sum[:])+".wasm")
		if b, err := os.ReadFile(path); err == nil {
			return b, nil
		}
	}
	wm, err := wasmbin.Decode(bin)
	if err != nil {
		return nil, err
	}
	if err := lower64.Lower(wm); err != nil {
		return nil, err
	}
	out := wm.Encode()
	if path != "" {
		// Best effort: a failed write only costs a lowering next time. The
		// rename makes a concurrent reader see a whole file or none.
		_ = writeAtomic(path, out)
	}
	return out, nil
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("wasm: cache %s: %w", path, werr)
	}
	return nil
}
