package arweave

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/interop"
)

// TestArbundlesItemsThroughEveryRoute posts every item arbundles makes (all
// signature types, 10 MiB, a nested bundle of 100) and reads each back through
// /raw, /{id}, HEAD, /tx and GraphQL, comparing with what arbundles reports.
func TestArbundlesItemsThroughEveryRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test")
	}
	out := t.TempDir()
	interop.Node(t, "gen.js", out)
	var manifest []struct {
		Name, File, ID, Owner, OwnerAddress, Target, Anchor string
		Tags                                                []ans104.Tag
		DataSize                                            int
		Bundle                                              bool
		BundleIDs                                           []string
	}
	raw, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, Config{})
	var n int
	for _, m := range manifest {
		if m.Bundle {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(out, m.File))
		d, err := ans104.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if code, res := f.post("/tx/arweave", b); code != 200 || res["id"] != m.ID {
			t.Fatalf("%s: upload %d %v", m.Name, code, res)
		}
		for _, p := range []string{"/raw/", "/"} {
			resp, err := http.Get(f.srv.URL + p + m.ID)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(body, d.Data) {
				t.Fatalf("%s: GET %s%s: %d, %d bytes, want %d", m.Name, p, m.ID, resp.StatusCode, len(body), len(d.Data))
			}
		}
		resp, err := http.Head(f.srv.URL + "/" + m.ID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ContentLength != int64(m.DataSize) {
			t.Errorf("%s: HEAD Content-Length %d, want %d", m.Name, resp.ContentLength, m.DataSize)
		}
		node := path(edges(f.gql(q4, map[string]any{"ids": []string{m.ID}}), "transactions")[0], "node")
		for _, c := range []struct {
			what string
			got  any
			want string
		}{
			{"id", path(node, "id"), m.ID},
			{"owner.key", path(node, "owner", "key"), m.Owner},
			{"owner.address", path(node, "owner", "address"), m.OwnerAddress},
			{"recipient", path(node, "recipient"), m.Target},
			{"anchor", path(node, "anchor"), m.Anchor},
			{"signature", path(node, "signature"), ans104.Base64URL(d.Signature)},
			{"data.size", path(node, "data", "size"), strconv.Itoa(m.DataSize)},
			{"tags", fmt.Sprint(tagsOf(node)), fmt.Sprint(m.Tags)},
		} {
			if fmt.Sprint(c.got) != c.want {
				t.Errorf("%s: %s = %.80v, arbundles %.80s", m.Name, c.what, c.got, c.want)
			}
		}
		var tx map[string]any
		resp, _ = http.Get(f.srv.URL + "/tx/" + m.ID)
		json.NewDecoder(resp.Body).Decode(&tx)
		resp.Body.Close()
		if tx["owner"] != m.Owner || tx["data_size"] != strconv.Itoa(m.DataSize) {
			t.Errorf("%s: /tx %v", m.Name, tx)
		}
		for _, child := range m.BundleIDs {
			e := edges(f.gql(`query($b: [ID!]) { transactions(bundledIn: $b, first: 100) { edges { node { id } } } }`, map[string]any{"b": []string{m.ID}}), "transactions")
			if len(e) != len(m.BundleIDs) {
				t.Fatalf("%s: %d bundled items indexed, want %d", m.Name, len(e), len(m.BundleIDs))
			}
			if _, err := http.Get(f.srv.URL + "/raw/" + child); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	if n < 45 {
		t.Fatalf("only %d items checked", n)
	}
}
