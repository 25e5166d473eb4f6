package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aonode/aonode/cu/wasm/lower64"
	"github.com/aonode/aonode/cu/wasm/meter"
	"github.com/aonode/aonode/cu/wasm/wasmbin"
)

// rewriteOpts selects the load-time rewrites of a module binary. They run in
// this order on one decoded module: gas metering (so that only the original
// instructions are metered, as in the reference), memory64 lowering, fuel.
type rewriteOpts struct {
	gas     wasmbin.ValType // meter.AddGas with this meter type (0: none)
	lower64 bool            // memory64 → memory32 (wasm64 formats)
	fuel    bool            // meter.AddFuel
}

// Versions name the outputs of the cacheable passes in the on-disk cache;
// bump one whenever its pass changes what it emits.
const (
	lowerVersion = "lower64-v1"
	gasVersion   = "gas-v2" // v2: usegas inlined (meter.InlineGas)
)

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

// rewrite applies the rewrites opts asks for. The gas metering and the
// lowering are done once per module binary: their output is kept in memory
// and, when cacheDir is set, on disk beside wazero's compilation cache, which
// then finds the compiled code of the (deterministic) rewritten bytes. The
// fuel instrumentation is cached in memory only, because it is cheap next to
// the other two.
func rewrite(bin []byte, opts rewriteOpts, cacheDir string) ([]byte, error) {
	if opts.gas == 0 && !opts.lower64 && !opts.fuel {
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
	var wm *wasmbin.Module // out decoded, when at hand
	if opts.gas != 0 || opts.lower64 {
		var err error
		if out, wm, err = staticCached(bin, key.sum, opts, cacheDir); err != nil {
			return nil, err
		}
	}
	if opts.fuel {
		if wm == nil {
			var err error
			if wm, err = wasmbin.Decode(out); err != nil {
				return nil, err
			}
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

// staticCached applies the gas metering and lowering opts asks for, reusing
// the on-disk copy of an earlier run on the same bytes. It returns the
// rewritten binary and, when it did the work, its decoded form for further
// passes (nil when the bytes came from disk).
func staticCached(bin []byte, sum [32]byte, opts rewriteOpts, cacheDir string) ([]byte, *wasmbin.Module, error) {
	var path string
	if cacheDir != "" {
		var parts []string
		if opts.gas != 0 {
			parts = append(parts, fmt.Sprintf("%s-%02x", gasVersion, byte(opts.gas)))
		}
		if opts.lower64 {
			parts = append(parts, lowerVersion)
		}
		path = filepath.Join(cacheDir, strings.Join(parts, "+"), hex.EncodeToString(sum[:])+".wasm")
		if b, err := os.ReadFile(path); err == nil {
			return b, nil, nil
		}
	}
	wm, err := wasmbin.Decode(bin)
	if err != nil {
		return nil, nil, err
	}
	if opts.gas != 0 {
		if err := meter.AddGas(wm, opts.gas); err != nil {
			return nil, nil, err
		}
		if err := meter.InlineGas(wm); err != nil {
			return nil, nil, err
		}
	}
	if opts.lower64 {
		if err := lower64.Lower(wm); err != nil {
			return nil, nil, err
		}
	}
	out := wm.Encode()
	if path != "" {
		// Best effort: a failed write only costs a rewrite next time. The
		// rename makes a concurrent reader see a whole file or none.
		_ = writeAtomic(path, out)
	}
	return out, wm, nil
}

// lowerCached lowers a memory64 binary, reusing the on-disk copy of an
// earlier lowering of the same bytes.
func lowerCached(bin []byte, sum [32]byte, cacheDir string) ([]byte, error) {
	out, _, err := staticCached(bin, sum, rewriteOpts{lower64: true}, cacheDir)
	return out, err
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
