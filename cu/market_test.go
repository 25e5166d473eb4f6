package cu

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/internal/interop"
)

// cuKey returns an Ed25519 wallet for a test CU.
func cuKey(name string) *ans104.Ed25519Signer {
	seed := make([]byte, 32)
	copy(seed, "aonode cu market test "+name)
	return ans104.NewEd25519Signer(ed25519.NewKeyFromSeed(seed))
}

func signerAddress(s ans104.Signer) string { return ans104.Address(s.Owner()) }

// tokenLua is a token process in the aos token blueprint's shape (the
// blueprint itself is not on npm): a Transfer debits the sender and sends the
// Recipient a Credit-Notice with Sender and Quantity. The README's market
// example loads the same file.
var tokenLua = func() string {
	b, err := os.ReadFile("testdata/token.lua")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func (n *network) transfer(ledger, to string, qty int) string {
	return n.send(ledger, "", ans104.Tag{Name: "Action", Value: "Transfer"}, ans104.Tag{Name: "Recipient", Value: to},
		ans104.Tag{Name: "Quantity", Value: strconv.Itoa(qty)})
}

// get returns the status, headers and body of a GET.
func get(t *testing.T, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func attestationJSON(t *testing.T, cuURL, pid, msg string) Attestation {
	t.Helper()
	code, _, b := get(t, cuURL+"/attestation/"+msg+"?process-id="+pid, "Accept", "application/json")
	var a Attestation
	if code != 200 || json.Unmarshal(b, &a) != nil {
		t.Fatalf("attestation of %s: %d %s", msg, code, b)
	}
	return a
}

// TestAttestationsAgree: two honest CUs with different wallets attest equal
// result and memory digests for 100 messages of an aos process, every
// attestation is a valid item for arbundles, and the /result header names it.
func TestAttestationsAgree(t *testing.T) {
	n := newNetwork(t)
	pid := n.spawn()
	var msgs []string
	for i := range 100 {
		switch i % 3 {
		case 0:
			msgs = append(msgs, n.eval(pid, fmt.Sprintf("T = (T or 0) + %d; return T", i)))
		case 1:
			msgs = append(msgs, n.send(pid, "ping "+strconv.Itoa(i), ans104.Tag{Name: "Action", Value: "Ping"}))
		default:
			msgs = append(msgs, n.eval(pid, fmt.Sprintf("error('boom %d')", i))) // a failed message, rolled back
		}
	}
	_, urlA := n.newCU(Config{Signer: cuKey("A")}, false)
	_, urlB := n.newCU(Config{Signer: cuKey("B"), CheckpointEvery: 7}, false)
	dir := t.TempDir()
	var files []string
	for i, m := range msgs {
		a := attestationJSON(t, urlA, pid, m)
		b := attestationJSON(t, urlB, pid, m)
		if a.ResultSHA256 != b.ResultSHA256 || a.MemorySHA256 != b.MemorySHA256 {
			t.Fatalf("message %d: CUs disagree: A %s/%s, B %s/%s", i, a.ResultSHA256, a.MemorySHA256, b.ResultSHA256, b.MemorySHA256)
		}
		if a.ID == b.ID || a.Owner != signerAddress(cuKey("A")) || a.Slot != int64(i+1) || a.Message != m || a.Process != pid {
			t.Fatalf("message %d: attestation %+v", i, a)
		}
		code, hdr, item := get(t, urlA+"/attestation/"+m+"?process-id="+pid)
		if code != 200 || hdr.Get("ao-attestation") != a.ID {
			t.Fatalf("attestation item: %d, header %q, want %s", code, hdr.Get("ao-attestation"), a.ID)
		}
		it, err := ans104.Parse(item)
		if err != nil || it.ID() != a.ID || it.Verify() != nil {
			t.Fatalf("attestation item %s does not parse or verify: %v", a.ID, err)
		}
		if v, _ := it.Tag("Memory-SHA-256"); v != a.MemorySHA256 {
			t.Fatalf("item tag Memory-SHA-256 %s, view %s", v, a.MemorySHA256)
		}
		if _, rh, _ := get(t, urlA+"/result/"+m+"?process-id="+pid); rh.Get("ao-attestation") != a.ID {
			t.Fatalf("/result ao-attestation %q, want %s", rh.Get("ao-attestation"), a.ID)
		}
		f := filepath.Join(dir, fmt.Sprintf("a%03d", i))
		os.WriteFile(f, item, 0o644)
		files = append(files, f)
	}
	// The memory digest after a failed message is the one before it.
	if a, b := attestationJSON(t, urlA, pid, msgs[1]), attestationJSON(t, urlA, pid, msgs[2]); a.MemorySHA256 != b.MemorySHA256 {
		t.Fatalf("a failed message changed the memory digest")
	}
	// And the memory digest is the one of the state the CU serves.
	code, _, mem := get(t, urlB+"/state/"+pid)
	if last := attestationJSON(t, urlB, pid, msgs[len(msgs)-1]); code != 200 || MemoryDigest(mem) != last.MemorySHA256 {
		t.Fatalf("/state digest %s, attested %s", MemoryDigest(mem), last.MemorySHA256)
	}
	if interop.Dir(t) == "" {
		return
	}
	for _, line := range bytes.Split(bytes.TrimSpace(interop.Node(t, "verify.js", files...)), []byte("\n")) {
		var v struct {
			File  string `json:"file"`
			Valid bool   `json:"valid"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(line, &v); err != nil || !v.Valid {
			t.Fatalf("arbundles rejects an attestation: %s", line)
		}
	}
}

// verifyRequest signs a /verify request carrying attestation item.
func verifyRequest(t *testing.T, signer ans104.Signer, item []byte) []byte {
	t.Helper()
	it, err := ans104.Sign(signer, item, ans104.Options{Tags: []ans104.Tag{{Name: "Data-Protocol", Value: "ao"}, {Name: "Type", Value: "Verify"}}})
	if err != nil {
		t.Fatal(err)
	}
	return it.Bytes()
}

func postVerify(t *testing.T, cuURL string, body []byte) (int, Verdict, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", cuURL+"/verify", bytes.NewReader(body))
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v Verdict
	json.Unmarshal(b, &v)
	return resp.StatusCode, v, b
}

// TestVerifyCatchesDishonestCU: a CU that corrupts one result is caught by
// another CU's /verify, an honest attestation is agreed with, and the fee
// is charged to the signer of the request.
func TestVerifyCatchesDishonestCU(t *testing.T) {
	n := newNetwork(t)
	ledger := n.spawn()
	n.eval(ledger, tokenLua)
	pid := n.spawn()
	var msgs []string
	for i := range 6 {
		msgs = append(msgs, n.eval(pid, fmt.Sprintf("return %d", i)))
	}
	_, honest := n.newCU(Config{Signer: cuKey("honest")}, false)
	_, liar := n.newCU(Config{Signer: cuKey("liar"), fault: func(p string, nonce int64, res []byte) []byte {
		if p == pid && nonce == 4 {
			return bytes.Replace(res, []byte(`"3"`), []byte(`"4"`), 1)
		}
		return res
	}}, false)
	verifier := cuKey("verifier")
	vs, vURL := n.newCU(Config{Signer: verifier, Prices: Prices{Verification: 7}, Ledger: ledger}, false)
	requester := clientKey // owns the token supply
	item := func(url, msg string) []byte {
		code, _, b := get(t, url+"/attestation/"+msg+"?process-id="+pid)
		if code != 200 {
			t.Fatalf("attestation: %d %s", code, b)
		}
		return b
	}
	// Unfunded: 402 with price and balance, and nothing is verified.
	code, _, body := postVerify(t, vURL, verifyRequest(t, requester, item(liar, msgs[3])))
	if code != http.StatusPaymentRequired || !strings.Contains(string(body), `"price":"7"`) || !strings.Contains(string(body), `"balance":"0"`) {
		t.Fatalf("unfunded verify: %d %s", code, body)
	}
	n.transfer(ledger, signerAddress(verifier), 100)
	code, v, body := postVerify(t, vURL, verifyRequest(t, requester, item(liar, msgs[3])))
	if code != 200 || v.Verdict != "disagree" || v.ExpectedResultSHA256 == v.AttestedResultSHA256 || v.Slot != 4 || v.Fee != "7" {
		t.Fatalf("verify of a corrupted result: %d %s", code, body)
	}
	code, v, body = postVerify(t, vURL, verifyRequest(t, requester, item(liar, msgs[2])))
	if code != 200 || v.Verdict != "agree" || v.Attester != signerAddress(cuKey("liar")) {
		t.Fatalf("verify of an honest result by the same CU: %d %s", code, body)
	}
	code, v, body = postVerify(t, vURL, verifyRequest(t, requester, item(honest, msgs[3])))
	if code != 200 || v.Verdict != "agree" || v.ExpectedMemorySHA256 != v.AttestedMemorySHA256 {
		t.Fatalf("verify of the honest CU: %d %s", code, body)
	}
	// The verdict itself is a signed item.
	req, _ := http.NewRequest("POST", vURL+"/verify", bytes.NewReader(verifyRequest(t, requester, item(liar, msgs[3]))))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	vi, err := ans104.Parse(raw)
	if err != nil || vi.Verify() != nil {
		t.Fatalf("verdict item does not verify: %v", err)
	}
	if got, _ := vi.Tag("Verdict"); got != "disagree" || vi.OwnerAddress() != signerAddress(verifier) {
		t.Fatalf("verdict item: Verdict %q by %s", got, vi.OwnerAddress())
	}
	// Three paid verifications: 100 - 3×7. The fourth request was the
	// first one again (same signed item): answered again, not charged again.
	code, _, b := get(t, vURL+"/balance/"+signerAddress(requester))
	if code != 200 || !strings.Contains(string(b), `"balance":"79"`) {
		t.Fatalf("balance after four verifications: %d %s", code, b)
	}
	if vs.metrics.verifyDisagree.Load() != 2 || vs.metrics.verifyAgree.Load() != 2 {
		t.Fatalf("verdict metrics: %d disagree, %d agree", vs.metrics.verifyDisagree.Load(), vs.metrics.verifyAgree.Load())
	}
	// Bad requests are refused clearly.
	for _, bad := range [][]byte{[]byte("not an item"), verifyRequest(t, requester, []byte("not an attestation"))} {
		if code, _, b := postVerify(t, vURL, bad); code != 400 {
			t.Fatalf("bad verify request: %d %s", code, b)
		}
	}
}

type quote struct {
	Price, Balance string
	Messages       int64
}

// TestPayPerUse: with prices on, an unfunded process gets 402 with price
// and balance; a Transfer on the ledger funds it and evaluation continues
// where it stopped; the balance falls by exactly the metered usage; a
// restart loses no charge and no credit.
func TestPayPerUse(t *testing.T) {
	n := newNetwork(t)
	ledger := n.spawn()
	n.eval(ledger, tokenLua)
	pid := n.spawn()
	m1 := n.eval(pid, "X = 1; return X")
	key := cuKey("priced")
	cuAddr := signerAddress(key)
	payer := signerAddress(clientKey)
	dir := t.TempDir()
	prices := Prices{Message: 100, Gigafuel: 1, DryRun: 5}
	s, url := n.newCU(Config{Signer: key, Prices: prices, Ledger: ledger, DataDir: dir}, false)

	var info struct {
		Pricing bool              `json:"pricing"`
		Prices  map[string]string `json:"prices"`
	}
	if getJSON(t, url+"/", &info); !info.Pricing || info.Prices["message"] != "100" || info.Prices["token"] != ledger {
		t.Fatalf("GET / prices: %+v", info)
	}
	var q quote
	if getJSON(t, url+"/quote?process-id="+pid+"&message="+m1, &q); q.Messages != 2 || q.Balance != "0" || q.Price != "200" {
		t.Fatalf("quote before funding: %+v", q)
	}
	code, hdr, body := get(t, url+"/result/"+m1+"?process-id="+pid)
	if code != http.StatusPaymentRequired || hdr.Get("price") != "100" || hdr.Get("balance") != "0" ||
		!strings.Contains(string(body), `"price":"100"`) || !strings.Contains(string(body), `"balance":"0"`) {
		t.Fatalf("unfunded result: %d %v %s", code, hdr, body)
	}
	// Fund two messages' worth (and a little fuel): the spawn and m1 run,
	// m2 is refused, and nothing is lost.
	n.transfer(ledger, cuAddr, 250)
	if r := result(t, url, pid, m1); r.data() != "1" {
		t.Fatalf("m1 after funding: %s", r.Output)
	}
	m2 := n.eval(pid, "X = X + 1; return X")
	if code, _, body := get(t, url+"/result/"+m2+"?process-id="+pid); code != http.StatusPaymentRequired {
		t.Fatalf("m2 beyond the balance: %d %s", code, body)
	}
	n.transfer(ledger, cuAddr, 1000)
	if r := result(t, url, pid, m2); r.data() != "2" {
		t.Fatalf("m2 after the second payment: %s", r.Output)
	}
	// The balance fell by exactly what was metered: each message its price
	// and its fuel (rounded up to whole gigafuel).
	want := int64(1250)
	for _, m := range []string{pid, m1, m2} {
		a := attestationJSON(t, url, pid, m)
		want -= prices.messageCost(a.FuelUsed)
		if a.FuelUsed == 0 {
			t.Fatalf("message %s has no fuel metered", m)
		}
	}
	balance := func(u string) string {
		var b struct{ Balance string }
		getJSON(t, u+"/balance/"+payer, &b)
		return b.Balance
	}
	if got := balance(url); got != strconv.FormatInt(want, 10) {
		t.Fatalf("balance %s, want %d", got, want)
	}
	var usage struct {
		Usage []Usage `json:"usage"`
	}
	getJSON(t, url+"/usage/"+pid, &usage)
	if len(usage.Usage) != 1 || usage.Usage[0].Messages != 3 || usage.Usage[0].Payer != payer || usage.Usage[0].Charged != strconv.FormatInt(1250-want, 10) {
		t.Fatalf("usage: %+v", usage.Usage)
	}
	// A dry-run costs its price.
	resp, err := http.Post(url+"/dry-run?process-id="+pid, "application/json", strings.NewReader(`{"Tags":[{"name":"Action","value":"Eval"}],"Data":"return X"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("dry-run: %v %v", err, resp)
	}
	resp.Body.Close()
	want -= prices.DryRun
	if got := balance(url); got != strconv.FormatInt(want, 10) {
		t.Fatalf("balance after a dry-run %s, want %d", got, want)
	}
	// A restart loses no charge and no credit.
	s.Close()
	_, url2 := n.newCU(Config{Signer: key, Prices: prices, Ledger: ledger, DataDir: dir}, false)
	if got := balance(url2); got != strconv.FormatInt(want, 10) {
		t.Fatalf("balance after a restart %s, want %d", got, want)
	}
	// The ledger itself is evaluated free, and other wallets have nothing.
	var other struct{ Balance string }
	if getJSON(t, url2+"/balance/"+cuAddr, &other); other.Balance != "0" {
		t.Fatalf("the CU's own balance: %s", other.Balance)
	}
}

// TestPricesNeedLedger: prices without a ledger cannot be funded.
func TestPricesNeedLedger(t *testing.T) {
	n := newNetwork(t)
	gw := NewHTTPGateway(n.gwURL)
	_, err := New(t.Context(), Config{Scheduler: NewHTTPScheduler(n.suURL, gw), Gateway: gw, Signer: cuKey("x"), DataDir: t.TempDir(), Prices: Prices{Message: 1}})
	if err == nil || !strings.Contains(err.Error(), "ledger") {
		t.Fatalf("New with prices and no ledger: %v", err)
	}
}

// gqlCount counts the gateway's items with Type: typ, owned by owner.
func gqlCount(t *testing.T, gwURL, typ, owner string) (int, []map[string]string) {
	t.Helper()
	q := fmt.Sprintf(`{"query":"query { transactions(owners: [\"%s\"], tags: [{name: \"Type\", values: [\"%s\"]}], first: 100) { edges { node { id tags { name value } } } } }"}`, owner, typ)
	resp, err := http.Post(gwURL+"/graphql", "application/json", strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Transactions struct {
				Edges []struct {
					Node struct {
						ID   string `json:"id"`
						Tags []struct{ Name, Value string }
					} `json:"node"`
				} `json:"edges"`
			} `json:"transactions"`
		} `json:"data"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("graphql: %s", b)
	}
	var tags []map[string]string
	for _, e := range out.Data.Transactions.Edges {
		m := map[string]string{"id": e.Node.ID}
		for _, tg := range e.Node.Tags {
			m[tg.Name] = tg.Value
		}
		tags = append(tags, m)
	}
	return len(tags), tags
}

// TestPublishAttestationsAndPrices: with publishing on, every attestation
// and the price record are found on the gateway by GraphQL.
func TestPublishAttestationsAndPrices(t *testing.T) {
	n := newNetwork(t)
	ledger := n.spawn()
	pid := n.spawn()
	var last string
	for i := range 5 {
		last = n.eval(pid, fmt.Sprintf("return %d", i))
	}
	key := cuKey("publisher")
	n.newCU(Config{Signer: key, PublishAttestations: true, PublishPrices: true, PublicURL: "http://cu.example:4004",
		Prices: Prices{Message: 3, Gigafuel: 2, Verification: 50, DryRun: 1}, Ledger: ledger}, false)
	_, prices := gqlCount(t, n.gwURL, "Compute-Price", signerAddress(key))
	if len(prices) != 1 || prices[0]["Url"] != "http://cu.example:4004" || prices[0]["Price-Message"] != "3" ||
		prices[0]["Price-Gigafuel"] != "2" || prices[0]["Token"] != ledger || prices[0]["Data-Protocol"] != "ao" {
		t.Fatalf("price record: %v", prices)
	}
	// A free CU publishes the attestations of what it evaluates.
	free, _ := n.newCU(Config{Signer: cuKey("free publisher"), PublishAttestations: true}, false)
	if _, err := free.Result(t.Context(), pid, last); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, items := gqlCount(t, n.gwURL, "Attestation", signerAddress(cuKey("free publisher")))
		if c == 6 { // the process and its five messages
			for _, it := range items {
				if it["Process"] != pid || len(it["Memory-SHA-256"]) != 64 || len(it["Result-SHA-256"]) != 64 {
					t.Fatalf("published attestation: %v", it)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d attestations on the gateway, want 6", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPricedReplay: a CU that replays a process from the start (no
// checkpoint) asks no one to pay again for the slots already charged, so a
// balance that covers the next message is enough.
func TestPricedReplay(t *testing.T) {
	n := newNetwork(t)
	ledger := n.spawn()
	n.eval(ledger, tokenLua)
	pid := n.spawn()
	var msgs []string
	for i := range 5 {
		msgs = append(msgs, n.eval(pid, fmt.Sprintf("Y = %d; return Y", i)))
	}
	key := cuKey("replay")
	dir := t.TempDir()
	prices := Prices{Message: 100}
	s, url := n.newCU(Config{Signer: key, Prices: prices, Ledger: ledger, DataDir: dir, CheckpointEvery: -1}, false)
	n.transfer(ledger, signerAddress(key), 6*100+50)
	result(t, url, pid, msgs[4]) // six slots charged: 50 left
	s.Close()
	n.transfer(ledger, signerAddress(key), 100) // 150: one more message, not six
	_, url2 := n.newCU(Config{Signer: key, Prices: prices, Ledger: ledger, DataDir: dir, CheckpointEvery: -1}, false)
	m := n.eval(pid, "return Y * 10")
	if r := result(t, url2, pid, m); r.data() != "40" {
		t.Fatalf("after a replay: %s", r.Output)
	}
	var b struct{ Balance string }
	if getJSON(t, url2+"/balance/"+signerAddress(clientKey), &b); b.Balance != "50" {
		t.Fatalf("balance after a replay and one message: %s, want 50", b.Balance)
	}
}
