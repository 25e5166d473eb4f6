package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/wallet"
)

// run executes the CLI in-process and returns stdout, stderr and the exit status.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errw bytes.Buffer
	err := dispatch(context.Background(), root, args, []string{"aonode"}, &out, &errw)
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errw.WriteString(err.Error())
	}
	return out.String(), errw.String(), code
}

func TestCLIWalletAndDataItem(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "eth.json")
	out, _, code := run(t, "wallet", "new", "--type", "ethereum", "-o", key)
	if code != 0 {
		t.Fatalf("wallet new: %d", code)
	}
	var created map[string]string
	json.Unmarshal([]byte(out), &created)
	addr, _, _ := run(t, "wallet", "address", key)
	if strings.TrimSpace(addr) != created["address"] || created["kind"] != "ethereum" {
		t.Fatalf("address %q, created %v", addr, created)
	}
	if native, _, _ := run(t, "wallet", "address", "--native", key); !strings.HasPrefix(native, "0x") {
		t.Fatalf("native address %q", native)
	}
	if _, _, code := run(t, "wallet", "new", "--type", "ethereum", "-o", key); code == 0 {
		t.Fatal("wallet new replaced an existing key")
	}

	item := filepath.Join(dir, "item.bin")
	target := strings.Repeat("A", 43)
	out, errs, code := run(t, "dataitem", "sign", "--wallet", key, "--target", target, "--anchor", strings.Repeat("0", 32),
		"--tag", "Data-Protocol=ao", "--tag", "Type=Message", "--tag", "Empty==x", "--data", "hello", "-o", item)
	if code != 0 {
		t.Fatalf("sign: %s", errs)
	}
	var signed itemJSON
	json.Unmarshal([]byte(out), &signed)

	// Flags may follow the file.
	out, _, code = run(t, "dataitem", "verify", item, "--strict")
	var v itemJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 || !v.Valid {
		t.Fatalf("verify: code %d %s", code, out)
	}
	if v.ID != signed.ID || v.Target != target || v.OwnerAddress != created["address"] || v.SignatureType != 3 ||
		v.DataSize != 5 || len(v.Tags) != 3 || v.Tags[2] != (ans104.Tag{Name: "Empty", Value: "=x"}) {
		t.Fatalf("verify shows %+v", v)
	}

	raw, _ := os.ReadFile(item)
	raw[len(raw)-1] ^= 1
	bad := filepath.Join(dir, "bad.bin")
	os.WriteFile(bad, raw, 0o644)
	if out, _, code := run(t, "dataitem", "verify", bad); code != 1 || !strings.Contains(out, `"valid":false`) {
		t.Fatalf("tampered: code %d %s", code, out)
	}
	os.WriteFile(bad, []byte("not an item"), 0o644)
	if _, errs, code := run(t, "dataitem", "verify", bad); code != 2 || !strings.Contains(errs, "malformed") {
		t.Fatalf("garbage: code %d %s", code, errs)
	}
}

func TestCLIBundleUnpack(t *testing.T) {
	dir := t.TempDir()
	w, _ := wallet.Generate(wallet.Ed25519)
	var items []*ans104.DataItem
	for i := range 3 {
		d, _ := ans104.Sign(w, []byte{byte(i)}, ans104.Options{})
		items = append(items, d)
	}
	b := ans104.BuildBundle(items)
	wrapped, _ := ans104.Sign(w, b, ans104.Options{Tags: ans104.BundleTags})
	for name, content := range map[string][]byte{"raw": b, "item": wrapped.Bytes()} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o644)
		out, errs, code := run(t, "bundle", "unpack", p, "--dir", filepath.Join(dir, name+"-items"))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 3 {
			t.Fatalf("%s: code %d, %d lines, %s", name, code, len(lines), errs)
		}
		for i, l := range lines {
			var j itemJSON
			json.Unmarshal([]byte(l), &j)
			if j.ID != items[i].ID() || !j.Valid {
				t.Fatalf("%s line %d: %s", name, i, l)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, name+"-items", j.ID)); !bytes.Equal(got, items[i].Bytes()) {
				t.Fatalf("%s: item %d not written", name, i)
			}
		}
	}
	p := filepath.Join(dir, "junk")
	os.WriteFile(p, []byte("junk"), 0o644)
	if _, _, code := run(t, "bundle", "unpack", p); code != 2 {
		t.Fatalf("junk bundle: code %d", code)
	}
}

func TestCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Commands:"},
		{[]string{"--help"}, 0, "dataitem"},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"wallet", "address"}, 2, "want a wallet FILE"},
		{[]string{"dataitem", "sign", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"dataitem", "verify", "--help"}, 0, "Exit status"},
		{[]string{"help", "wallet", "new"}, 0, "-o FILE"},
		{[]string{"wallet", "new", "--type", "rot13", "-o", filepath.Join(t.TempDir(), "x")}, 2, "unknown kind"},
	} {
		out, errs, code := run(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: code %d, output %q", tc.args, code, out+errs)
		}
	}
}
