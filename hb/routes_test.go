package hb_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/client"
	"github.com/aonode/aonode/internal/interop"
	"github.com/aonode/aonode/node"
)

type fixture struct {
	t      *testing.T
	n      *node.Node
	signer ans104.Signer
	c      *client.Client // the legacy units, signed by signer
	module string
}

func newFixture(t *testing.T, cfg node.Config) *fixture {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	wasm := interop.WaoModule(t, "aos2_0_4_32.wasm")
	n := startNode(t, cfg)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c := client.New(ans104.NewEd25519Signer(key))
	c.Gateway, c.SU, c.CU, c.MU = n.GatewayURL, n.SUURL, n.CUURL, n.MUURL
	module, err := c.PublishModule(context.Background(), wasm, client.Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb", ComputeLimit: "9000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, n: n, signer: ans104.NewEd25519Signer(key), c: c, module: module}
}

// item signs an item as aoconnect's mainnet mode does (transport tags inside).
func (f *fixture) item(target string, data string, tags ...ans104.Tag) []byte {
	f.t.Helper()
	var tgt []byte
	if target != "" {
		var err error
		if tgt, err = ans104.DecodeBase64URL(target); err != nil {
			f.t.Fatal(err)
		}
	}
	tags = append(tags, ans104.Tag{Name: "signing-format", Value: "ans104"}, ans104.Tag{Name: "accept-bundle", Value: "true"},
		ans104.Tag{Name: "require-codec", Value: "application/json"}, ans104.Tag{Name: "Data-Protocol", Value: "ao"}, ans104.Tag{Name: "Variant", Value: "ao.N.1"})
	// A random anchor: Ed25519 signatures are deterministic, and the same
	// Eval twice must be two messages.
	anchor := make([]byte, 32)
	rand.Read(anchor)
	it, err := ans104.Sign(f.signer, []byte(data), ans104.Options{Target: tgt, Anchor: anchor, Tags: tags})
	if err != nil {
		f.t.Fatal(err)
	}
	return it.Bytes()
}

func (f *fixture) spawnItem(module, scheduler string) []byte {
	return f.item("", "1984", ans104.Tag{Name: "device", Value: "process@1.0"}, ans104.Tag{Name: "execution-device", Value: "genesis-wasm@1.0"},
		ans104.Tag{Name: "Authority", Value: f.n.MUAddress}, ans104.Tag{Name: "Scheduler", Value: scheduler},
		ans104.Tag{Name: "Module", Value: module}, ans104.Tag{Name: "Type", Value: "Process"})
}

func (f *fixture) evalItem(pid, code string) []byte {
	return f.item(pid, code, ans104.Tag{Name: "Action", Value: "Eval"}, ans104.Tag{Name: "Type", Value: "Message"})
}

// do sends a request to the AO-Core surface and returns status, headers, body.
func (f *fixture) do(method, path string, body []byte) (int, http.Header, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.n.HBURL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/ans104")
		req.Header.Set("codec-device", "ans104@1.0")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// want checks a status and, for errors, a JSON {"error"} containing sub.
func (f *fixture) want(what string, code int, body string, wantCode int, sub string) {
	f.t.Helper()
	if code != wantCode {
		f.t.Fatalf("%s: status %d, want %d: %s", what, code, wantCode, body)
	}
	if code >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, sub) {
			f.t.Fatalf("%s: error body %s, want one containing %q", what, body, sub)
		}
	} else if !strings.Contains(body, sub) {
		f.t.Fatalf("%s: body %s, want %q in it", what, body, sub)
	}
}

// TestRoutes drives every route of the AO-Core surface of a real node with
// good and bad requests.
func TestRoutes(t *testing.T) {
	f := newFixture(t, node.Config{})

	code, _, body := f.do("GET", "/~meta@1.0/info", nil)
	f.want("info", code, body, 200, `"address":"`+f.n.MUAddress+`"`)
	f.want("info", code, body, 200, `"simple_pay_price":0`)
	code, _, body = f.do("GET", "/~meta@1.0/info/address", nil)
	if code != 200 || body != f.n.MUAddress {
		t.Fatalf("info/address: %d %q, want the MU address %s", code, body, f.n.MUAddress)
	}
	code, _, body = f.do("GET", "/~meta@1.0/info/nope", nil)
	f.want("info/nope", code, body, 404, "no key nope")
	code, hdr, _ := f.do("OPTIONS", "/push", nil)
	if code != 204 || !strings.Contains(hdr.Get("Access-Control-Expose-Headers"), "process") {
		t.Fatalf("preflight: %d, expose %q", code, hdr.Get("Access-Control-Expose-Headers"))
	}

	// Bad spawns leave nothing behind.
	code, _, body = f.do("POST", "/push", []byte("not an item"))
	f.want("garbage push", code, body, 400, "Invalid data item")
	code, _, body = f.do("POST", "/push", make([]byte, 10<<20+1))
	f.want("huge push", code, body, 413, "larger than")
	unknown := strings.Repeat("A", 43)
	bad := f.spawnItem(unknown, f.n.SUAddress)
	code, _, body = f.do("POST", "/push", bad)
	f.want("unknown module", code, body, 404, "aonode module publish")
	badID, _ := ans104.Parse(bad)
	code, _, body = f.do("GET", "/"+badID.ID()+"~process@1.0/slot/current", nil)
	f.want("half-spawned", code, body, 404, "not scheduled")
	code, _, body = f.do("POST", "/push", f.evalItem(unknown, "1"))
	f.want("message to /push", code, body, 400, "Type: Process")

	// Spawn, as aos does, naming the public mainnet scheduler.
	spawn := f.spawnItem(f.module, "n_XZJhUnmldNFo4dhajoPZWhBXuJk-OcQr5JQ49c4Zo")
	code, hdr, body = f.do("POST", "/push", spawn)
	f.want("spawn", code, body, 200, `"slot":0`)
	pid := hdr.Get("process")
	if it, _ := ans104.Parse(spawn); pid != it.ID() {
		t.Fatalf("process header %q, want %s", pid, it.ID())
	}
	code, _, body = f.do("POST", "/"+pid+"/slot/current", f.item(pid, "1984"))
	if code != 200 || body != "0" {
		t.Fatalf("slot/current after spawn: %d %q", code, body)
	}

	// Messages.
	code, _, body = f.do("POST", "/"+pid+"~process@1.0/push", f.evalItem(unknown, "return 1"))
	f.want("target mismatch", code, body, 400, "not the process")
	code, _, body = f.do("POST", "/"+unknown+"~process@1.0/push", f.evalItem(unknown, "return 1"))
	f.want("unknown process", code, body, 404, "not scheduled")
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/push", nil)
	f.want("GET push", code, body, 405, "POST")
	msg := f.evalItem(pid, "return 1+1")
	code, _, body = f.do("POST", "/"+pid+"~process@1.0/push", msg)
	f.want("push", code, body, 200, `"slot":1`)
	var pushed struct {
		Slot    int64
		Process string
		ID      string
		Raw     struct{ Output struct{ Data any } }
	}
	if err := json.Unmarshal([]byte(body), &pushed); err != nil || pushed.Process != pid || pushed.Raw.Output.Data != "2" {
		t.Fatalf("push answer %s (%v)", body, err)
	}

	// Results by slot and by id, both path forms, GET and POST.
	for _, p := range []string{"/" + pid + "~process@1.0/compute/results=1", "/" + pid + "/compute/results=1", "/" + pid + "~process@1.0/compute/results=" + pushed.ID} {
		for _, m := range []string{"GET", "POST"} {
			var b []byte
			if m == "POST" {
				b = f.item(pid, "1984")
			}
			var hdr http.Header
			code, hdr, body = f.do(m, p, b)
			f.want(m+" "+p, code, body, 200, `"data":"2"`)
			if len(hdr.Get("ao-attestation")) != 43 {
				t.Fatalf("%s %s: ao-attestation header %q, want the CU's attestation id", m, p, hdr.Get("ao-attestation"))
			}
		}
	}
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/compute/results=0", nil)
	f.want("boot result", code, body, 200, `"raw":{`)
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/compute/results=99", nil)
	f.want("unknown slot", code, body, 404, "no slot 99")
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/compute/results=-1", nil)
	f.want("negative slot", code, body, 400, "negative")
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/compute/results=what", nil)
	f.want("bad ref", code, body, 400, "neither")
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/compute/results="+unknown, nil)
	f.want("unknown message", code, body, 404, "not scheduled")
	code, _, body = f.do("GET", "/"+pid+"/slot/current", nil)
	if code != 200 || body != "1" {
		t.Fatalf("slot/current: %d %q", code, body)
	}

	// Dry-run: path tags are added, state is not kept.
	code, _, body = f.do("POST", "/"+pid+"~process@1.0/as=execution/compute&Action=Eval", f.item(pid, "X = 5; return X"))
	f.want("dry-run", code, body, 200, `"data":"5"`)
	code, _, body = f.do("POST", "/"+pid+"~process@1.0/push", f.evalItem(pid, "return tostring(X)"))
	f.want("after dry-run", code, body, 200, `"data":"nil"`)
	code, _, body = f.do("POST", "/"+pid+"~process@1.0/as=execution/compute&Action=Eval", []byte("junk"))
	f.want("bad dry-run", code, body, 400, "Invalid data item")

	// Schedule.
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/schedule?from=0&to=1", nil)
	var page struct {
		Edges []struct {
			Node struct{ Message struct{ ID string } }
		}
	}
	if json.Unmarshal([]byte(body), &page); code != 200 || len(page.Edges) != 2 || page.Edges[0].Node.Message.ID != pid || page.Edges[1].Node.Message.ID != pushed.ID {
		t.Fatalf("schedule: %d %s", code, body)
	}
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/schedule?from=x", nil)
	f.want("bad schedule", code, body, 400, "not a slot")

	// patch@1.0 state.
	code, _, body = f.do("POST", "/"+pid+"~process@1.0/push", f.evalItem(pid, "Send({ device = 'patch@1.0', balances = { alice = '7' } })"))
	f.want("patch", code, body, 200, `patch@1.0`)
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/now/balances/alice", nil)
	if code != 200 || body != "7" {
		t.Fatalf("now/balances/alice: %d %q", code, body)
	}
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/compute/balances", nil)
	f.want("compute/balances", code, body, 200, `"alice":"7"`)
	code, _, body = f.do("GET", "/"+pid+"~process@1.0/now/nothing", nil)
	f.want("now/nothing", code, body, 404, "exposes no")

	code, _, body = f.do("GET", "/nowhere", nil)
	f.want("unknown route", code, body, 404, "no AO-Core route")
	code, _, body = f.do("DELETE", "/push", nil)
	f.want("DELETE", code, body, 405, "method")
}

// TestStrictScheduler: with StrictScheduler a process naming a scheduler the
// node does not serve is refused and not scheduled, while the node address
// (the MU's) is still served.
func TestStrictScheduler(t *testing.T) {
	f := newFixture(t, node.Config{StrictScheduler: true})
	foreign := f.spawnItem(f.module, "n_XZJhUnmldNFo4dhajoPZWhBXuJk-OcQr5JQ49c4Zo")
	code, _, body := f.do("POST", "/push", foreign)
	if code < 400 || code >= 500 {
		t.Fatalf("foreign scheduler in strict mode: %d %s", code, body)
	}
	it, _ := ans104.Parse(foreign)
	code, _, body = f.do("GET", "/"+it.ID()+"/slot/current", nil)
	f.want("refused spawn", code, body, 404, "not scheduled")

	own := f.spawnItem(f.module, f.n.MUAddress)
	code, hdr, body := f.do("POST", "/push", own)
	f.want("own scheduler", code, body, 200, "process")
	pid := hdr.Get("process")
	code, _, body = f.do("POST", "/"+pid+"~process@1.0/push", f.evalItem(pid, "return 'ok'"))
	f.want("push", code, body, 200, `"data":"ok"`)
}
