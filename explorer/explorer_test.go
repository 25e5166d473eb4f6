package explorer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/explorer"
)

func do(t *testing.T, method, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestProxyIsReadOnly: the explorer reaches every unit, but writes nothing:
// only GET and HEAD pass, and POST only to GraphQL and dry-run.
func TestProxyIsReadOnly(t *testing.T) {
	n := startNode(t)
	base := n.ExplorerURL
	big := strings.Repeat("x", explorer.MaxPostBytes+1)
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/api/su/", "", 200, n.SUAddress},
		{"GET", "/api/cu/", "", 200, `"address"`},
		{"GET", "/api/gateway/info", "", 200, `"network"`},
		{"GET", "/api/mu/metrics", "", 200, "mu_tasks_pending"},
		{"GET", "/api/hb/~meta@1.0/info", "", 200, n.MUAddress},
		{"POST", "/api/gateway/graphql", `{"query":"{ transactions(first: 1) { edges { node { id } } } }"}`, 200, `"transactions"`},
		{"POST", "/api/mu/", "item", 405, "read-only"},
		{"POST", "/api/su/", "item", 405, "read-only"},
		{"POST", "/api/gateway/tx", "item", 405, "read-only"},
		{"POST", "/api/mu/monitor/" + n.SUAddress, "", 405, "read-only"},
		{"DELETE", "/api/mu/monitor/" + n.SUAddress, "", 405, ""},
		{"PUT", "/api/gateway/graphql", "", 405, ""},
		{"POST", "/api/cu/dry-run?process-id=" + n.SUAddress, big, 413, "larger"},
		{"GET", "/api/elsewhere/x", "", 404, "no unit"},
		{"GET", "/api/verify/not-an-id", "", 400, "not an id"},
	} {
		code, _, body := do(t, tc.method, base+tc.path, tc.body)
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s: %d %s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
		}
		if code >= 400 && !json.Valid(body) {
			t.Errorf("%s %s: error is not JSON: %s", tc.method, tc.path, body)
		}
	}
	var cfg struct {
		Units []struct{ Name, URL string }
	}
	_, _, b := do(t, "GET", base+"/api/config", "")
	if err := json.Unmarshal(b, &cfg); err != nil || len(cfg.Units) != 5 || cfg.Units[0].URL != n.GatewayURL {
		t.Fatalf("config %s: %v", b, err)
	}
}

// TestPageIsServedOffline: the page and its modules are served with the
// types browsers require, and nothing in them loads from another origin.
func TestPageIsServedOffline(t *testing.T) {
	n := startNode(t)
	for path, typ := range map[string]string{"/": "text/html", "/app.js": "javascript", "/style.css": "text/css", "/flow.js": "javascript"} {
		code, h, _ := do(t, "GET", n.ExplorerURL+path, "")
		if code != 200 || !strings.Contains(h.Get("Content-Type"), typ) {
			t.Errorf("GET %s: %d %s", path, code, h.Get("Content-Type"))
		}
	}
	// The SVG namespace is a name, not a request.
	external := regexp.MustCompile(`https?://(?:[^w]|w[^w]|ww[^w])|//cdn|@import`)
	err := filepath.WalkDir("web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to another origin: %q", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerify checks signatures from what the gateway serves.
func TestVerify(t *testing.T) {
	n := startNode(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	target := make([]byte, 32)
	rand.Read(target)
	for _, tc := range []struct {
		name string
		opts ans104.Options
		data []byte
	}{
		{"bare", ans104.Options{}, []byte("hello")},
		{"target, anchor and tags", ans104.Options{Target: target, Anchor: []byte("0123456789abcdef0123456789abcdef"),
			Tags: []ans104.Tag{{Name: "Type", Value: "Message"}, {Name: "Action", Value: "Ping"}}}, []byte("data")},
		{"empty data", ans104.Options{Tags: []ans104.Tag{{Name: "A", Value: "b"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ans104.Sign(ans104.NewEd25519Signer(key), tc.data, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Post(n.GatewayURL+"/tx", "application/octet-stream", bytes.NewReader(d.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("upload: %d", resp.StatusCode)
			}
			ex, err := explorer.New(explorer.Config{GatewayURL: n.GatewayURL, SUURL: n.SUURL, CUURL: n.CUURL, MUURL: n.MUURL})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			v, err := ex.Verify(ctx, d.ID())
			if err != nil || v.Status != "valid" || v.Type != "ed25519" {
				t.Fatalf("%+v %v", v, err)
			}
		})
	}
	code, _, b := do(t, "GET", n.ExplorerURL+"/api/verify/"+strings.Repeat("A", 43), "")
	if code != 200 || !strings.Contains(string(b), `"unchecked"`) {
		t.Fatalf("unknown id: %d %s", code, b)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, cfg := range []explorer.Config{
		{SUURL: "http://a", CUURL: "http://a", MUURL: "http://a"},
		{GatewayURL: "ftp://a", SUURL: "http://a", CUURL: "http://a", MUURL: "http://a"},
		{GatewayURL: "http://a", SUURL: "http://a", CUURL: "http://a", MUURL: "http://a", HBURL: "nope"},
	} {
		if _, err := explorer.New(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
