package su

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/wallet"
)

type testSU struct {
	*Server
	http *httptest.Server
	gw   *fakeGateway
}

func startSU(t testing.TB, st Store, w *wallet.Wallet, legacy bool) *testSU {
	t.Helper()
	gw := newFakeGateway(t)
	srv, err := New(context.Background(), Config{Signer: w, Store: st, Chain: NewHTTPChain(gw.URL), URL: "http://su.test:4003", Legacy: legacy})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &testSU{Server: srv, http: hs, gw: gw}
}

func (s *testSU) do(t testing.TB, method, path string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, s.http.URL+path, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (s *testSU) get(t testing.TB, path string) (int, []byte) {
	code, b, _ := s.do(t, http.MethodGet, path, nil)
	return code, b
}

// keys returns the keys of a JSON object in document order.
func keys(t testing.TB, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var out []string
	for dec.More() {
		k, _ := dec.Token()
		out = append(out, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	return out
}

func field(t testing.TB, raw []byte, path ...string) json.RawMessage {
	t.Helper()
	cur := json.RawMessage(raw)
	for _, p := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			t.Fatalf("%s: %v in %s", p, err, cur)
		}
		cur = m[p]
	}
	return cur
}

func wantKeys(t testing.TB, raw []byte, want ...string) {
	t.Helper()
	if got := keys(t, raw); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("keys %v, want %v in %s", got, want, raw)
	}
}

var digits = regexp.MustCompile(`^"[0-9]+"$`)

func mustUnmarshal[T any](t testing.TB, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return v
}

// TestHTTPConformance checks every route, field, type and status of the
// reference SU's API (units.md §3.2–§3.4), on both storage backends.
func TestHTTPConformance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		su := startSU(t, st, suWallet(), false)

		// GET /: address and timestamp (a string).
		code, body := su.get(t, "/")
		wantKeys(t, body, "address", "timestamp")
		if code != 200 || string(field(t, body, "address")) != `"`+suWallet().Address()+`"` || !digits.Match(field(t, body, "timestamp")) {
			t.Fatalf("GET / %d %s", code, body)
		}
		// GET /timestamp: both strings, the height 12-digit zero-padded.
		_, body = su.get(t, "/timestamp")
		if !digits.Match(field(t, body, "timestamp")) || string(field(t, body, "block_height")) != `"000001736676"` {
			t.Fatalf("GET /timestamp %s", body)
		}
		if code, body := su.get(t, "/health"); code != 200 || len(body) != 0 {
			t.Fatalf("GET /health %d %q", code, body)
		}
		if code, body := su.get(t, "/healthz"); code != 200 || string(field(t, body, "status")) != `"ok"` {
			t.Fatalf("GET /healthz %d %q", code, body)
		}

		// POST / a process: 200 {"timestamp": <number>, "id": <pid>}.
		proc := processItem(t, suWallet().Address())
		pid := proc.ID()
		code, body, _ = su.do(t, http.MethodPost, "/", proc.Bytes())
		wantKeys(t, body, "timestamp", "id")
		if code != 200 || string(field(t, body, "id")) != `"`+pid+`"` || !regexp.MustCompile(`^[0-9]{13}$`).Match(field(t, body, "timestamp")) {
			t.Fatalf("POST process %d %s", code, body)
		}
		var msgs []*ans104.DataItem
		for range 4 {
			m := messageItem(t, pid)
			msgs = append(msgs, m)
			code, body, _ := su.do(t, http.MethodPost, "/", m.Bytes())
			if code != 200 || string(field(t, body, "id")) != `"`+m.ID()+`"` {
				t.Fatalf("POST message %d %s", code, body)
			}
		}
		// A retry is answered like the first time and takes no nonce.
		if code, body, _ := su.do(t, http.MethodPost, "/", msgs[0].Bytes()); code != 200 || string(field(t, body, "id")) != `"`+msgs[0].ID()+`"` {
			t.Fatalf("POST retry %d %s", code, body)
		}

		// GET /{message}: one Message JSON, fields in the reference order.
		code, body = su.get(t, "/"+msgs[1].ID()+"?process-id="+pid)
		if code != 200 {
			t.Fatalf("GET message %d %s", code, body)
		}
		wantKeys(t, body, "message", "assignment")
		m := field(t, body, "message")
		wantKeys(t, m, "id", "owner", "data", "tags", "signature", "anchor", "target")
		wantKeys(t, field(t, m, "owner"), "address", "key")
		if string(field(t, m, "data")) != `"hello"` || string(field(t, m, "anchor")) != "null" || string(field(t, m, "target")) != `"`+pid+`"` ||
			string(field(t, m, "owner", "address")) != `"`+ans104.Address(clientKey.Owner())+`"` {
			t.Fatalf("message %s", m)
		}
		a := field(t, body, "assignment")
		wantKeys(t, a, "id", "owner", "tags", "signature", "anchor", "target")
		if string(field(t, a, "anchor")) != "null" || string(field(t, a, "target")) != `""` || string(field(t, a, "owner", "address")) != `"`+suWallet().Address()+`"` {
			t.Fatalf("assignment %s", a)
		}
		tags := mustUnmarshal[[]TagJSON](t, field(t, a, "tags"))
		names := []string{}
		for _, tg := range tags {
			names = append(names, tg.Name)
		}
		if strings.Join(names, ",") != "Process,Epoch,Nonce,Hash-Chain,Block-Height,Timestamp,Data-Protocol,Type,Variant,Message" ||
			tags[0].Value != pid || tags[1].Value != "0" || tags[2].Value != "2" || tags[4].Value != "000001736676" || tags[9].Value != msgs[1].ID() {
			t.Fatalf("assignment tags %v", tags)
		}
		// ... also by its assignment id, and with show-anchor the assignment anchor is base64url.
		aid := mustUnmarshal[string](t, field(t, a, "id"))
		if code, body2 := su.get(t, "/"+aid+"?process-id="+pid); code != 200 || !bytes.Equal(body2, body) {
			t.Fatalf("GET by assignment id %d %s", code, body2)
		}
		_, body = su.get(t, "/"+msgs[1].ID()+"?process-id="+pid+"&show-anchor")
		if anc := mustUnmarshal[string](t, field(t, body, "assignment", "anchor")); len(anc) != 43 {
			t.Fatalf("show-anchor anchor %q", anc)
		}

		// GET /{process}: the page, the process first (AOP-6), cursors are timestamps.
		_, body = su.get(t, "/"+pid+"?process-id="+pid)
		wantKeys(t, body, "page_info", "edges")
		page := mustUnmarshal[PageJSON](t, body)
		if page.PageInfo.HasNextPage || len(page.Edges) != 5 {
			t.Fatalf("page %s", body)
		}
		wantKeys(t, field(t, body, "page_info"), "has_next_page")
		first := page.Edges[0].Node
		if first.Message.ID != pid || first.Message.Target != nil || *first.Message.Data != "process data" || tagValue(first.Assignment.Tags, "Nonce") != "0" ||
			tagValue(first.Assignment.Tags, "Message") != "" || page.Edges[0].Cursor != tagValue(first.Assignment.Tags, "Timestamp") {
			t.Fatalf("process edge %+v", page.Edges[0])
		}
		for i, e := range page.Edges[1:] {
			if e.Node.Message.ID != msgs[i].ID() || tagValue(e.Node.Assignment.Tags, "Nonce") != fmt.Sprint(i+1) || e.Cursor != tagValue(e.Node.Assignment.Tags, "Timestamp") {
				t.Fatalf("edge %d %+v", i+1, e)
			}
		}
		// Without process-id (as aoconnect sends it) the path id is used.
		if code, body2 := su.get(t, "/"+pid); code != 200 || !bytes.Equal(body2, body) {
			t.Fatalf("GET page without process-id %d", code)
		}
		// limit, has_next_page, and paging on from = last cursor.
		page = mustUnmarshal[PageJSON](t, second(su.get(t, "/"+pid+"?limit=2")))
		if len(page.Edges) != 2 || !page.PageInfo.HasNextPage {
			t.Fatalf("limit 2: %d edges, next %v", len(page.Edges), page.PageInfo.HasNextPage)
		}
		var walked []string
		for _, e := range page.Edges {
			walked = append(walked, e.Node.Message.ID)
		}
		for cursor := page.Edges[1].Cursor; ; {
			p := mustUnmarshal[PageJSON](t, second(su.get(t, "/"+pid+"?limit=2&from="+cursor)))
			for _, e := range p.Edges {
				walked = append(walked, e.Node.Message.ID)
				cursor = e.Cursor
			}
			if !p.PageInfo.HasNextPage {
				break
			}
		}
		if len(walked) != 5 || walked[0] != pid || walked[4] != msgs[3].ID() {
			t.Fatalf("walk %v", walked)
		}
		// Nonce mode: from-nonce exclusive, to-nonce inclusive, cursors are nonces; -1 includes the process.
		page = mustUnmarshal[PageJSON](t, second(su.get(t, "/"+pid+"?from-nonce=1&to-nonce=3")))
		if len(page.Edges) != 2 || page.Edges[0].Cursor != "2" || page.Edges[1].Cursor != "3" {
			t.Fatalf("nonce mode %+v", page.Edges)
		}
		page = mustUnmarshal[PageJSON](t, second(su.get(t, "/"+pid+"?from-nonce=-1&to-nonce=1")))
		if len(page.Edges) != 2 || page.Edges[0].Cursor != "0" || page.Edges[0].Node.Message.ID != pid {
			t.Fatalf("nonce mode from -1 %+v", page.Edges)
		}
		// to (inclusive) in timestamp mode.
		ts2 := page.Edges[1].Node.Assignment.Tags
		page = mustUnmarshal[PageJSON](t, second(su.get(t, "/"+pid+"?to="+tagValue(ts2, "Timestamp"))))
		for _, e := range page.Edges {
			if e.Cursor > tagValue(ts2, "Timestamp") {
				t.Fatalf("edge after to: %s", e.Cursor)
			}
		}

		// GET /processes/{id}.
		_, body = su.get(t, "/processes/"+pid)
		wantKeys(t, body, "process_id", "block", "owner", "tags", "timestamp", "data", "anchor", "signature", "target")
		pj := mustUnmarshal[ProcessJSON](t, body)
		if pj.ProcessID != pid || pj.Block != "000001736676" || pj.Timestamp == 0 || *pj.Data != "process data" || pj.Target != nil || pj.Anchor != nil ||
			!regexp.MustCompile(`^[0-9]+$`).Match(field(t, body, "timestamp")) {
			t.Fatalf("process %s", body)
		}
		// GET /{process}/latest: the last slot.
		_, body = su.get(t, "/"+pid+"/latest")
		if mustUnmarshal[MessageJSON](t, body).Message.ID != msgs[3].ID() {
			t.Fatalf("latest %s", body)
		}

		// Assignments: exclude tags, answered with the assignment id; base-layer confirmations.
		other := messageItem(t, pid)
		su.gw.Server.Config.Handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/tx/arweave", bytes.NewReader(other.Bytes())))
		code, body, _ = su.do(t, http.MethodPost, "/?process-id="+pid+"&assign="+other.ID()+"&exclude=Data,Tags", nil)
		if code != 200 {
			t.Fatalf("assign %d %s", code, body)
		}
		assignID := mustUnmarshal[string](t, field(t, body, "id"))
		_, body = su.get(t, "/"+assignID+"?process-id="+pid)
		pure := mustUnmarshal[MessageJSON](t, body)
		if string(field(t, body, "message")) != "null" || pure.Assignment.ID != assignID || tagValue(pure.Assignment.Tags, "Message") != other.ID() ||
			len(pure.Assignment.Tags) != 12 || pure.Assignment.Tags[10].Value != "Data" || pure.Assignment.Tags[11].Value != "Tags" {
			t.Fatalf("pure assignment %s", body)
		}
		// A pure assignment is not answered by the assigned id, which is not a process either.
		if code, body := su.get(t, "/"+other.ID()+"?process-id="+pid); code != 400 || string(body) != `{"error":"Message or Process not found"}` {
			t.Fatalf("assigned id %d %s", code, body)
		}
		l1, l2 := strings.Repeat("B", 42)+"A", strings.Repeat("C", 42)+"A"
		su.gw.mu.Lock()
		su.gw.status[l1], su.gw.status[l2] = 20, 19
		su.gw.mu.Unlock()
		if code, body, _ := su.do(t, http.MethodPost, "/?process-id="+pid+"&assign="+l1+"&base-layer", nil); code != 200 {
			t.Fatalf("base-layer assign %d %s", code, body)
		}
		if code, body, _ := su.do(t, http.MethodPost, "/?process-id="+pid+"&assign="+l2+"&base-layer", nil); code != 400 || !strings.Contains(string(body), "Not enough confirmations") {
			t.Fatalf("base-layer assign, too few confirmations: %d %s", code, body)
		}
		if code, body, _ := su.do(t, http.MethodPost, "/?process-id="+pid+"&assign="+strings.Repeat("D", 42)+"A", nil); code != 400 || !strings.Contains(string(body), "not found") {
			t.Fatalf("assign of an unknown tx: %d %s", code, body)
		}

		// Refusals: JSON errors, never a panic or hang.
		for _, c := range []struct {
			method, path string
			body         []byte
			code         int
			msg          string
		}{
			{"POST", "/", []byte("junk"), 400, "Invalid data item"},
			{"POST", "/", nil, 400, "Invalid data item"},
			{"POST", "/?process-id=" + pid, msgs[0].Bytes(), 400, "If sending assign or process-id, you must send both."},
			{"POST", "/?assign=" + pid, nil, 400, "If sending assign or process-id, you must send both."},
			{"POST", "/", make([]byte, 10<<20+1), 413, "Payload larger"},
			{"GET", "/" + strings.Repeat("Z", 43), nil, 400, "Message or Process not found"},
			{"GET", "/" + pid + "?limit=abc", nil, 400, "Invalid limit"},
			{"GET", "/" + pid + "?limit=0", nil, 400, "Invalid limit"},
			{"GET", "/" + pid + "?from=x", nil, 400, "Invalid from"},
			{"GET", "/" + pid + "?from-nonce=1.5", nil, 400, "Invalid from-nonce"},
			{"GET", "/processes/" + strings.Repeat("Z", 43), nil, 400, "Process not found"},
			{"GET", "/" + strings.Repeat("Z", 43) + "/latest", nil, 400, "Latest message not available"},
			{"GET", "/a/b/c", nil, 404, "Not found"},
			{"PUT", "/", nil, 405, "Method not allowed"},
			{"DELETE", "/" + pid, nil, 405, "Method not allowed"},
		} {
			code, body, h := su.do(t, c.method, c.path, c.body)
			if code != c.code || h.Get("Content-Type") != "application/json" || !strings.Contains(mustUnmarshal[map[string]string](t, body)["error"], c.msg) {
				t.Errorf("%s %s: %d %s, want %d %q", c.method, c.path, code, body, c.code, c.msg)
			}
		}
		code, _, h := su.do(t, http.MethodOptions, "/", nil)
		if code != 204 || h.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("CORS preflight %d %v", code, h)
		}
		if _, _, h := su.do(t, http.MethodGet, "/", nil); h.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatal("no CORS header")
		}
		_, body = su.get(t, "/metrics")
		if !strings.Contains(string(body), "su_scheduled_total 7") || !strings.Contains(string(body), `su_http_requests_total{route="write",code="200"}`) {
			t.Fatalf("metrics:\n%s", body)
		}

		// Everything acknowledged reaches the permanent store, with the Scheduler-Location record.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := su.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		links, slots := schedule(t, st, pid)
		if err := VerifyHashChain(pid, links); err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			if su.gw.item(l.AssignmentID) == nil {
				t.Fatalf("assignment %d not published", l.Nonce)
			}
		}
		for _, s := range append(slots, &SlotRecord{MessageID: pid, Message: proc.Bytes()}) {
			if s.Message != nil && !bytes.Equal(su.gw.item(s.MessageID), s.Message) {
				t.Fatalf("item %s not published", s.MessageID)
			}
		}
		var loc *ans104.DataItem
		su.gw.mu.Lock()
		for _, raw := range su.gw.items {
			if it, _ := ans104.Parse(raw); it != nil && tagValueItem(it, "Type") == "Scheduler-Location" {
				loc = it
			}
		}
		su.gw.mu.Unlock()
		if loc == nil || loc.OwnerAddress() != suWallet().Address() || fmt.Sprint(loc.Tags) != fmt.Sprint(LocationTags("http://su.test:4003", time.Hour)) {
			t.Fatalf("Scheduler-Location %v", loc)
		}
	})
}

func second[A, B any](_ A, b B) B { return b }

func tagValue(tags []TagJSON, name string) string {
	for _, t := range tags {
		if t.Name == name {
			return t.Value
		}
	}
	return ""
}

func tagValueItem(it *ans104.DataItem, name string) string { v, _ := it.Tag(name); return v }

// TestHTTPRSAWallet: with the default Arweave wallet every assignment is an
// RSA-PSS (type 1) item with a 512-byte owner that verifies, and the Legacy flag
// turns the process edge off.
func TestHTTPRSAWallet(t *testing.T) {
	st, _ := backends[0].open(t)
	su := startSU(t, st, rsaWallet(), true)
	proc := processItem(t, rsaWallet().Address())
	pid := proc.ID()
	if code, body, _ := su.do(t, http.MethodPost, "/", proc.Bytes()); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	m := messageItem(t, pid)
	if code, body, _ := su.do(t, http.MethodPost, "/", m.Bytes()); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	page := mustUnmarshal[PageJSON](t, second(su.get(t, "/"+pid)))
	if len(page.Edges) != 1 || tagValue(page.Edges[0].Node.Assignment.Tags, "Nonce") != "0" || page.Edges[0].Node.Message.ID != m.ID() {
		t.Fatalf("legacy page %+v", page)
	}
	_, slots := schedule(t, st, pid)
	a, _ := ans104.Parse(slots[0].Assignment)
	if a.Type != ans104.TypeArweave || len(a.Owner) != 512 || a.Verify() != nil {
		t.Fatalf("assignment type %v owner %d", a.Type, len(a.Owner))
	}
	_, body := su.get(t, "/processes/"+pid)
	if pj := mustUnmarshal[ProcessJSON](t, body); pj.Data != nil || pj.Block != "000001736676" {
		t.Fatalf("legacy process JSON %s", body)
	}
}

// TestReadMessageOfAnotherProcess: GET /{message}?process-id=<another process>
// is 404, by message id and by assignment id; the owning process still reads it.
func TestReadMessageOfAnotherProcess(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		su := startSU(t, st, suWallet(), false)
		var pids []string
		for range 2 {
			p := processItem(t, suWallet().Address())
			if code, body, _ := su.do(t, http.MethodPost, "/", p.Bytes()); code != 200 {
				t.Fatalf("POST process %d %s", code, body)
			}
			pids = append(pids, p.ID())
		}
		a, other := pids[0], pids[1]
		m := messageItem(t, a)
		code, body, _ := su.do(t, http.MethodPost, "/", m.Bytes())
		if code != 200 {
			t.Fatalf("POST message %d %s", code, body)
		}
		_, body = su.get(t, "/"+m.ID()+"?process-id="+a)
		aid := mustUnmarshal[MessageJSON](t, body).Assignment.ID
		for _, tc := range []struct {
			path string
			code int
			want string
		}{
			{"/" + m.ID() + "?process-id=" + a, 200, `"id":"` + m.ID() + `"`},
			{"/" + m.ID(), 200, `"id":"` + m.ID() + `"`},
			{"/" + aid + "?process-id=" + a, 200, `"id":"` + m.ID() + `"`},
			{"/" + m.ID() + "?process-id=" + other, 404, `{"error":"Message ` + m.ID() + ` is not in the schedule of process ` + other + `"}`},
			{"/" + aid + "?process-id=" + other, 404, `is not in the schedule of process`},
			{"/" + strings.Repeat("Z", 43) + "?process-id=" + other, 400, `{"error":"Message or Process not found"}`},
			{"/" + other + "?process-id=" + other, 200, `"page_info"`},
		} {
			code, body := su.get(t, tc.path)
			if code != tc.code || !strings.Contains(string(body), tc.want) {
				t.Errorf("GET %s: %d %s", tc.path, code, body)
			}
		}
	})
}

// TestSUErrorsAreJSON: the SU's answers outside its routes are JSON too, and
// a body larger than the limit is refused before it is read.
func TestSUErrorsAreJSON(t *testing.T) {
	st, err := OpenSQLite(context.Background(), t.TempDir()+"/su.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	su := startSU(t, st, suWallet(), false)
	req, _ := http.NewRequest(http.MethodGet, su.http.URL+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 100<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("large headers: %d %s", resp.StatusCode, b)
	}
	// Declared too large: refused before any of the body is sent (a raw
	// request, so that no client is writing a body the server does not read).
	conn, err := net.Dial("tcp", strings.TrimPrefix(su.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: su\r\nContent-Length: %d\r\n\r\n", 11<<20)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("large body: no answer: %v", err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"error":"Payload larger than`) {
		t.Errorf("large body: %d %s", resp.StatusCode, b)
	}
}

// TestPageReadsAreBounded: with every page slot taken, a schedule read waits,
// and is answered as soon as one frees.
func TestPageReadsAreBounded(t *testing.T) {
	st, err := OpenSQLite(context.Background(), t.TempDir()+"/su.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	su := startSU(t, st, suWallet(), false)
	p := processItem(t, suWallet().Address())
	if code, body, _ := su.do(t, http.MethodPost, "/", p.Bytes()); code != 200 {
		t.Fatalf("POST process %d %s", code, body)
	}
	var releases []func()
	for range maxConcurrentPages {
		release, err := su.pages.Acquire(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	done := make(chan int, 1)
	go func() {
		code, _ := su.get(t, "/"+p.ID()+"?process-id="+p.ID())
		done <- code
	}()
	select {
	case code := <-done:
		t.Fatalf("answered %d with every page slot taken", code)
	case <-time.After(300 * time.Millisecond):
	}
	// Single messages and processes are not pages: they do not wait.
	if code, _ := su.get(t, "/processes/"+p.ID()); code != 200 {
		t.Fatalf("GET /processes: %d", code)
	}
	releases[0]()
	select {
	case code := <-done:
		if code != 200 {
			t.Fatalf("after a slot freed: %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still waiting after a slot freed")
	}
}

// TestAssignGatewayDown: when the gateway cannot be asked whether an assigned
// transaction exists, the SU answers 503, which an MU retries, and not 400,
// which an MU takes for a refusal no retry can change.
func TestAssignGatewayDown(t *testing.T) {
	st, err := OpenSQLite(context.Background(), t.TempDir()+"/su.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	su := startSU(t, st, suWallet(), false)
	p := processItem(t, suWallet().Address())
	if code, body, _ := su.do(t, http.MethodPost, "/", p.Bytes()); code != 200 {
		t.Fatalf("POST process %d %s", code, body)
	}
	su.gw.Close()
	code, body, _ := su.do(t, http.MethodPost, "/?process-id="+p.ID()+"&assign="+strings.Repeat("D", 42)+"A", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "gateway") {
		t.Fatalf("assign with the gateway down: %d %s", code, body)
	}
}

// TestBaseLayerAssignGatewayDown: a base-layer assign whose status the
// gateway cannot give (down) is 503, which an MU retries, not 400.
func TestBaseLayerAssignGatewayDown(t *testing.T) {
	st, err := OpenSQLite(context.Background(), t.TempDir()+"/su.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	su := startSU(t, st, suWallet(), false)
	p := processItem(t, suWallet().Address())
	if code, body, _ := su.do(t, http.MethodPost, "/", p.Bytes()); code != 200 {
		t.Fatalf("POST process %d %s", code, body)
	}
	su.gw.Close()
	code, body, _ := su.do(t, http.MethodPost, "/?process-id="+p.ID()+"&assign="+strings.Repeat("D", 42)+"A&base-layer", nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("base-layer assign with the gateway down: %d %s", code, body)
	}
}

// TestHealthzStoreDown: a load balancer's health check fails (503) once the
// SU's store stops answering.
func TestHealthzStoreDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		su := startSU(t, st, suWallet(), false)
		if code, _ := su.get(t, "/healthz"); code != 200 {
			t.Fatalf("GET /healthz %d, want 200", code)
		}
		st.Close()
		if code, body := su.get(t, "/healthz"); code != 503 {
			t.Fatalf("GET /healthz with the store closed: %d %s, want 503", code, body)
		}
	})
}
