package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aonode/aonode/wallet"
)

// TestStartReportsCorruptInputs: each broken input on disk makes Start return
// an error that names the file and the fix, and the ports it took are free
// again. Before, every one of them panicked in Close on a nil Node.
func TestStartReportsCorruptInputs(t *testing.T) {
	// Ed25519 unit wallets keep the test fast; Start loads any kind.
	writeWallets := func(t *testing.T, dir string) {
		for _, unit := range []string{"su", "cu", "mu"} {
			w, err := wallet.Generate(wallet.Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Save(filepath.Join(dir, "wallets", unit+".json")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the --data to pass
		want  []string                              // in the error, with the data dir for DIR
	}{
		{"empty unit wallet", func(t *testing.T, dir string) string {
			writeWallets(t, dir)
			os.WriteFile(filepath.Join(dir, "wallets", "su.json"), nil, 0o600)
			return dir
		}, []string{"DIR/wallets/su.json", "fix: restore", "delete it"}},
		{"corrupt unit wallet", func(t *testing.T, dir string) string {
			writeWallets(t, dir)
			os.WriteFile(filepath.Join(dir, "wallets", "mu.json"), []byte(`{"kty":"RSA","n":`), 0o600)
			return dir
		}, []string{"DIR/wallets/mu.json", "fix: restore"}},
		{"corrupt store", func(t *testing.T, dir string) string {
			writeWallets(t, dir)
			os.MkdirAll(filepath.Join(dir, "gateway"), 0o700)
			os.WriteFile(filepath.Join(dir, "gateway", "store.db"), []byte(strings.Repeat("not a database ", 1000)), 0o600)
			return dir
		}, []string{"DIR/gateway/store.db", "fix: restore", "move DIR/gateway away"}},
		{"data is a file", func(t *testing.T, dir string) string {
			f := filepath.Join(dir, "file")
			os.WriteFile(f, []byte("x"), 0o600)
			return f
		}, []string{"DIR is a file", "fix: pass --data a directory"}},
		{"data under a file", func(t *testing.T, dir string) string {
			f := filepath.Join(dir, "file")
			os.WriteFile(f, []byte("x"), 0o600)
			return filepath.Join(f, "sub")
		}, []string{"is a file", "fix: pass --data a directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.setup(t, t.TempDir())
			cfg := Config{DataDir: data, GatewayPort: freePort(t), SUPort: freePort(t), CUPort: freePort(t), MUPort: freePort(t)}
			n, err := Start(context.Background(), cfg)
			if err == nil {
				n.Close()
				t.Fatal("Start succeeded")
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "DIR", data); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// The ports are free again.
			for _, p := range []int{cfg.GatewayPort, cfg.SUPort, cfg.CUPort, cfg.MUPort} {
				ln, err := listen("127.0.0.1", p, "test")
				if err != nil {
					t.Fatalf("port %d still taken after a failed start: %v", p, err)
				}
				ln.Close()
			}
		})
	}
}
