package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aonode/aonode/ans104"
)

type seen struct {
	method, path, query, contentType string
	body                             []byte
}

// fakeUnit records requests and answers with a fixed status and body.
func fakeUnit(t *testing.T, status int, answer string, log *[]seen) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*log = append(*log, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), b})
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func testClient(t *testing.T) (*Client, *[]seen) {
	var log []seen
	c := New(ans104.NewEd25519Signer(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))))
	u := fakeUnit(t, 200, `{"id":"x","Output":{"data":"2","prompt":"aos> "},"Messages":[],"Spawns":[],"Assignments":[],"edges":[{"cursor":"c1","node":{"Output":"o"}}]}`, &log)
	c.MU, c.CU, c.SU, c.Gateway = u, u, u, u
	return c, &log
}

func TestWireShapes(t *testing.T) {
	c, log := testClient(t)
	ctx := context.Background()
	pid := ans104.Base64URL(bytes.Repeat([]byte{0x3c}, 32))

	id, err := c.Spawn(ctx, Spawn{Module: "mod", Scheduler: "sched", Tags: []Tag{{Name: "Authority", Value: "mu"}, {Name: "Name", Value: "n"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := (*log)[0]
	d, err := ans104.Parse(s.body)
	if err != nil || d.Verify() != nil || d.ID() != id || s.method != "POST" || s.path != "/" || s.contentType != "application/octet-stream" {
		t.Fatalf("spawn request %+v: %v", s, err)
	}
	if d.Target != nil || d.Anchor != nil || string(d.Data) != " " {
		t.Error("spawn: no target, no anchor, data \" \"")
	}
	var names []string
	for _, tag := range d.Tags {
		names = append(names, tag.Name)
	}
	if got := strings.Join(names, ","); got != "Authority,Name,Content-Type,SDK,Data-Protocol,Variant,Type,Module,Scheduler,Timestamp" {
		t.Errorf("spawn tags %s", got)
	}

	if _, err := c.Message(ctx, Message{Process: pid, Tags: []Tag{{Name: "Action", Value: "Eval"}}, Data: []byte("return 1+1")}); err != nil {
		t.Fatal(err)
	}
	d, _ = ans104.Parse((*log)[1].body)
	names = nil
	for _, tag := range d.Tags {
		names = append(names, tag.Name+"="+tag.Value)
	}
	if got := strings.Join(names, ","); got != "Action=Eval,SDK=aonode,Data-Protocol=ao,Variant=ao.TN.1,Type=Message" || ans104.Base64URL(d.Target) != pid {
		t.Errorf("message tags %s", got)
	}
	if len(d.Anchor) != 32 {
		t.Errorf("message anchor %q, want 32 random characters", d.Anchor)
	}
	if _, err := c.Message(ctx, Message{Process: "short"}); err == nil {
		t.Error("bad process id accepted")
	}

	r, err := c.Result(ctx, pid, "msg")
	if err != nil || r.OutputData() != "2" || r.Prompt() != "aos> " || r.Failed() {
		t.Fatalf("result %+v %v", r, err)
	}
	if s := (*log)[2]; s.path != "/result/msg" || s.query != "process-id="+pid {
		t.Errorf("result request %+v", s)
	}
	p, err := c.Results(ctx, pid, ResultsQuery{From: "c0", Sort: "DESC", Limit: 5})
	if err != nil || len(p.Edges) != 1 || p.Edges[0].Cursor != "c1" || p.Edges[0].Node.OutputData() != "o" {
		t.Fatalf("results %+v %v", p, err)
	}
	if s := (*log)[3]; s.path != "/results/"+pid || s.query != "from=c0&limit=5&sort=DESC" {
		t.Errorf("results request %+v", s)
	}

	if _, err := c.DryRun(ctx, Message{Process: pid, Tags: []Tag{{Name: "Action", Value: "Balance"}}}); err != nil {
		t.Fatal(err)
	}
	s = (*log)[4]
	var body map[string]any
	json.Unmarshal(s.body, &body)
	if s.path != "/dry-run" || s.query != "process-id="+pid || s.contentType != "application/json" || body["Target"] != pid || body["Data"] != "1234" ||
		body["Anchor"] != "0" || fmt.Sprint(body["Tags"]) != "[map[name:Action value:Balance] map[name:Data-Protocol value:ao] map[name:Type value:Message] map[name:Variant value:ao.TN.1]]" {
		t.Errorf("dry-run request %+v %v", s, body)
	}

	if err := c.Monitor(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if err := c.Unmonitor(ctx, pid); err != nil {
		t.Fatal(err)
	}
	for i, m := range []string{"POST", "DELETE"} {
		s := (*log)[5+i]
		d, err := ans104.Parse(s.body)
		if s.method != m || s.path != "/monitor/"+pid || err != nil || ans104.Base64URL(d.Target) != pid {
			t.Errorf("monitor %+v", s)
		}
	}
	if _, err := c.Assign(ctx, Assignment{Process: pid, Message: "m", BaseLayer: true, Exclude: []string{"Data", "Anchor"}}); err != nil {
		t.Fatal(err)
	}
	if s := (*log)[7]; s.path != "/" || s.query != "process-id="+pid+"&assign=m&base-layer&exclude=Data%2CAnchor" || len(s.body) != 0 {
		t.Errorf("assign %+v", s)
	}
	if _, err := c.PublishModule(ctx, []byte("\x00asm"), Module{Format: "wasm32-unknown-emscripten4", MemoryLimit: "1-gb"}); err != nil {
		t.Fatal(err)
	}
	d, _ = ans104.Parse((*log)[8].body)
	if (*log)[8].path != "/tx/arweave" || fmt.Sprint(d.Tags[3]) != "{Module-Format wasm32-unknown-emscripten4}" || string(d.Data) != "\x00asm" {
		t.Errorf("publish %+v", d.Tags)
	}
}

func TestErrors(t *testing.T) {
	var log []seen
	c := New(ans104.NewEd25519Signer(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))))
	c.CU = fakeUnit(t, 404, `{"error":"Message not found"}`, &log)
	_, err := c.Result(context.Background(), "p", "m")
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Msg != "Message not found" {
		t.Fatalf("err %v", err)
	}
	if _, err := c.Spawn(context.Background(), Spawn{}); err == nil {
		t.Fatal("spawn without module")
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("MU_URL", "http://mu.example/")
	t.Setenv("CU_URL", "http://cu.example")
	t.Setenv("GATEWAY_URL", "")
	c := New(nil)
	if c.MU != "http://mu.example" || c.CU != "http://cu.example" || c.Gateway != DefaultGatewayURL {
		t.Fatalf("%+v", c)
	}
}

// TestSameContentTwice checks that sending the same content twice makes two
// messages, even with a deterministic signer (Ed25519), whose identical items
// would otherwise share an id and be taken by the SU for a retry.
func TestSameContentTwice(t *testing.T) {
	c, log := testClient(t)
	pid := ans104.Base64URL(bytes.Repeat([]byte{0x3c}, 32))
	id1, err1 := c.Message(context.Background(), Message{Process: pid, Data: []byte("same")})
	id2, err2 := c.Message(context.Background(), Message{Process: pid, Data: []byte("same")})
	if err1 != nil || err2 != nil || id1 == id2 || len(*log) != 2 {
		t.Fatalf("ids %s %s (%v, %v), %d requests", id1, id2, err1, err2, len(*log))
	}
	// An explicit anchor is kept, so the caller can choose idempotent resends.
	anchor := []byte("00000000000000000000000000000007")
	id3, _ := c.Message(context.Background(), Message{Process: pid, Data: []byte("same"), Anchor: anchor})
	id4, _ := c.Message(context.Background(), Message{Process: pid, Data: []byte("same"), Anchor: anchor})
	if id3 != id4 {
		t.Fatal("the same item with the same anchor got two ids")
	}
}
