package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/aonode/aonode/internal/interop"
)

const aosFile = "aos2_0_4_32.wasm"

var (
	aosOnce sync.Once
	aosMod  *Module
	aosErr  error
)

// aos compiles aos 2.0.4 once per test binary (wazero's cache in .cache makes
// later test runs fast).
func aos(t testing.TB) *Module {
	t.Helper()
	bin := interop.WaoModule(t, aosFile)
	aosOnce.Do(func() {
		aosMod, aosErr = Compile(context.Background(), bin, Options{
			Format:     FormatEmscripten4,
			Extensions: []string{ExtensionWeaveDrive},
			CacheDir:   filepath.Join(interop.CacheDir(t), "wazero"),
		})
	})
	if aosErr != nil {
		t.Fatalf("compile aos: %v", aosErr)
	}
	return aosMod
}

// Test identities (43-character base64url, like real ids and addresses).
const (
	testPID    = "PROCESS_ID_0000000000000000000000000000000a"
	testOwner  = "OWNER_ADDRESS_00000000000000000000000000001"
	testModule = "MODULE_ID_000000000000000000000000000000001"
	otherAddr  = "SOMEONE_ELSE_0000000000000000000000000000002"
	peerPID    = "PEER_PROCESS_0000000000000000000000000000003"
)

type tag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// message has the CU's key order (units.md §5.6).
type message struct {
	ID          string `json:"Id"`
	Signature   string `json:"Signature"`
	Data        string `json:"Data"`
	Owner       string `json:"Owner"`
	Target      string `json:"Target"`
	Anchor      string `json:"Anchor"`
	From        string `json:"From"`
	ForwardedBy string `json:"Forwarded-By,omitempty"`
	Tags        []tag  `json:"Tags"`
	Epoch       int    `json:"Epoch"`
	Nonce       int    `json:"Nonce"`
	Timestamp   int64  `json:"Timestamp"`
	BlockHeight int64  `json:"Block-Height"`
	HashChain   string `json:"Hash-Chain"`
	Cron        bool   `json:"Cron"`
	ReadOnly    bool   `json:"Read-Only"`
}

// marshal encodes like JSON.stringify for our inputs (no HTML escaping).
func marshal(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

var processTags = []tag{
	{"Data-Protocol", "ao"}, {"Variant", "ao.TN.1"}, {"Type", "Process"},
	{"Module", testModule}, {"Scheduler", "SCHEDULER_0000000000000000000000000000000004"},
	{"Name", "difftest"}, {"Authority", "AUTHORITY_00000000000000000000000000000005"},
}

func testEnv(t testing.TB) []byte {
	return marshal(t, map[string]any{
		"Process": map[string]any{"Id": testPID, "Owner": testOwner, "Tags": processTags},
		"Module": map[string]any{"Id": testModule, "Owner": testOwner, "Tags": []tag{
			{"Data-Protocol", "ao"}, {"Variant", "ao.TN.1"}, {"Type", "Module"},
			{"Module-Format", FormatEmscripten4}, {"Input-Encoding", "JSON-V1"},
			{"Output-Encoding", "JSON-V1"}, {"Memory-Limit", "1-gb"}, {"Compute-Limit", "9000000000000"},
		}},
	})
}

// script builds a deterministic message sequence.
type script struct {
	t     testing.TB
	nonce int
	msgs  [][]byte
}

func (s *script) id() string {
	id := "MSG_" + strconv.Itoa(s.nonce)
	for len(id) < 43 {
		id += "0"
	}
	return id
}

func (s *script) add(m message) []byte {
	m.Nonce = s.nonce
	if m.ID == "" {
		m.ID = s.id()
	}
	m.Signature = "SIG_" + m.ID
	m.Target = testPID
	m.Anchor = ""
	m.Timestamp = 1_700_000_000_000 + int64(s.nonce)*1000
	m.BlockHeight = 1_500_000 + int64(s.nonce/10)
	m.HashChain = "HC_" + strconv.Itoa(s.nonce)
	if m.Owner == "" {
		m.Owner = testOwner
	}
	if m.From == "" {
		m.From = m.Owner
	}
	if m.Tags == nil {
		m.Tags = []tag{}
	}
	s.nonce++
	b := marshal(s.t, m)
	s.msgs = append(s.msgs, b)
	return b
}

func (s *script) boot() []byte {
	return s.add(message{ID: testPID, Data: "", Tags: processTags})
}

func (s *script) eval(code string) []byte {
	return s.add(message{Data: code, Tags: []tag{{"Action", "Eval"}}})
}

func (s *script) send(from string, data string, tags ...tag) []byte {
	return s.add(message{Owner: from, From: from, Data: data, Tags: tags})
}

func mustHandle(t testing.TB, in *Instance, msg, env []byte) *Result {
	t.Helper()
	r, err := in.Handle(context.Background(), msg, env)
	if err != nil {
		t.Fatalf("handle: %v", err)
	}
	return r
}

// outputData returns Output.data of an aos result as a string.
func outputData(t testing.TB, r *Result) string {
	t.Helper()
	var o struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.Output, &o); err != nil {
		t.Fatalf("output %s: %v (error %s)", r.Output, err, r.Error)
	}
	var s string
	if json.Unmarshal(o.Data, &s) == nil {
		return s
	}
	return string(o.Data)
}

func snapshot(t testing.TB, in *Instance) []byte {
	t.Helper()
	img, err := in.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// booted returns a new aos 2.0.4 instance that has evaluated its boot
// message, closed at the end of the test, with the script that goes on
// from there and the env.
func booted(t testing.TB, cfg Config) (*Instance, *script, []byte) {
	t.Helper()
	in, err := aos(t).Instantiate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	env := testEnv(t)
	s := &script{t: t}
	mustHandle(t, in, s.boot(), env)
	return in, s, env
}
