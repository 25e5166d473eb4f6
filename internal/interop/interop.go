// Package interop runs the reference npm packages (arbundles, and later aoconnect
// and ao-loader) under node, so tests can judge wire compatibility against real
// peers instead of our own reading of the protocol.
//
// The packages are pinned by interop/package-lock.json and installed with npm ci
// into the git-ignored interop/node_modules on first use. When node or npm is
// missing the tests that need them are skipped, unless AONODE_REQUIRE_INTEROP is
// set (CI sets it), in which case they fail.
package interop

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

var (
	once     sync.Once
	dir      string
	setupErr string
)

// Dir returns the interop directory with its npm packages installed, or skips
// (fails under AONODE_REQUIRE_INTEROP) the test when that is impossible.
func Dir(t testing.TB) string {
	t.Helper()
	once.Do(func() { dir, setupErr = setup() })
	if setupErr != "" {
		if os.Getenv("AONODE_REQUIRE_INTEROP") != "" {
			t.Fatalf("interop setup: %s", setupErr)
		}
		t.Skipf("interop setup (set AONODE_REQUIRE_INTEROP=1 to make this fatal): %s", setupErr)
	}
	return dir
}

// Node runs `node script args...` in the interop directory and returns stdout.
func Node(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	d := Dir(t)
	cmd := exec.Command("node", append([]string{filepath.Join(d, script)}, args...)...)
	cmd.Dir = d
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.Bytes())
	}
	return out
}

func setup() (string, string) {
	_, file, _, _ := runtime.Caller(0)
	d := filepath.Join(filepath.Dir(file), "..", "..", "interop")
	d, _ = filepath.Abs(d)
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", tool + " is not installed"
		}
	}
	lock, err := os.ReadFile(filepath.Join(d, "package-lock.json"))
	if err != nil {
		return "", err.Error()
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(d, "node_modules", ".aonode-lock-sha256")

	// Test binaries of several packages run at once; one installs, the others wait.
	f, err := os.OpenFile(filepath.Join(d, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err.Error()
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return "", err.Error()
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return d, ""
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = d
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "npm ci: " + err.Error() + "\n" + string(out)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return "", err.Error()
	}
	return d, ""
}
