package su

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
)

var aonodeBinary = struct {
	sync.Once
	path string
	err  error
}{}

// buildAonode builds the real binary once per test run.
func buildAonode(t *testing.T) string {
	t.Helper()
	aonodeBinary.Do(func() {
		dir, err := os.MkdirTemp("", "aonode-su-test-")
		if err != nil {
			aonodeBinary.err = err
			return
		}
		aonodeBinary.path = filepath.Join(dir, "aonode")
		out, err := exec.Command("go", "build", "-o", aonodeBinary.path, "github.com/aonode/aonode/cmd/aonode").CombinedOutput()
		if err != nil {
			aonodeBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if aonodeBinary.err != nil {
		t.Fatal(aonodeBinary.err)
	}
	return aonodeBinary.path
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type suProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
}

func startSUProcess(t *testing.T, bin string, args ...string) *suProcess {
	t.Helper()
	port := freePort(t)
	p := &suProcess{url: "http://127.0.0.1:" + port, stderr: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, append([]string{"su", "--host", "127.0.0.1", "--port", port}, args...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("SU did not start: %v\n%s", err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var crashClient = &http.Client{Timeout: 20 * time.Second}

func post(url string, body []byte) (int, []byte, error) {
	resp, err := crashClient.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestCrashDurability runs a real `aonode su` process, loads it with concurrent
// messages on several processes, kills it with SIGKILL mid-load, restarts it on
// the same data, and checks that every acknowledged message is in the schedule,
// that nonces have no gap and no duplicate, that the hash chain and every
// assignment signature verify end to end, that retries of everything sent
// schedule nothing twice, and that the outbox publishes everything acknowledged
// to the permanent store. It runs on SQLite and on PostgreSQL.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the aonode binary")
	}
	bin := buildAonode(t)
	forEachBackend(t, func(t *testing.T, b backend) {
		dir := t.TempDir()
		if err := suWallet().Save(filepath.Join(dir, "su-wallet.json")); err != nil {
			t.Fatal(err)
		}
		gw := newFakeGateway(t)
		args := []string{"--data", dir, "--gateway-url", gw.URL, "--url", "http://su.crash.test"}
		if b.name == "postgres" {
			args = append(args, "--database", pgSchema(t))
		}
		su := startSUProcess(t, bin, args...)

		const nprocs, perProc, clients = 4, 150, 16
		var pids []string
		var msgs []*ans104.DataItem
		for range nprocs {
			p := processItem(t, suWallet().Address())
			if code, body, err := post(su.url+"/", p.Bytes()); err != nil || code != 200 {
				t.Fatalf("process: %d %s %v", code, body, err)
			}
			pids = append(pids, p.ID())
		}
		for i := range nprocs * perProc {
			msgs = append(msgs, messageItem(t, pids[i%nprocs]))
		}

		// Load concurrently; kill the SU once a third of the messages are acknowledged.
		var next, acked atomic.Int64
		ack := make([]atomic.Bool, len(msgs))
		sent := make([]atomic.Bool, len(msgs))
		killed := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(len(msgs)) {
						return
					}
					sent[i].Store(true)
					code, body, err := post(su.url+"/", msgs[i].Bytes())
					if err != nil {
						return // the SU is gone
					}
					if code != 200 {
						t.Errorf("message %d: %d %s", i, code, body)
						return
					}
					var r struct{ ID string }
					if json.Unmarshal(body, &r) != nil || r.ID != msgs[i].ID() {
						t.Errorf("message %d: answer %s", i, body)
						return
					}
					ack[i].Store(true)
					if acked.Add(1) == int64(len(msgs)/3) {
						once.Do(func() {
							su.cmd.Process.Kill() // SIGKILL
							close(killed)
						})
					}
				}
			})
		}
		wg.Wait()
		select {
		case <-killed:
		default:
			t.Fatal("the load finished before the kill")
		}
		su.cmd.Wait()
		t.Logf("%s: %d acknowledged before SIGKILL, %d sent", b.name, acked.Load(), next.Load())

		su = startSUProcess(t, bin, args...)
		verify := func(stage string) {
			t.Helper()
			for _, pid := range pids {
				links, ids := fetchSchedule(t, su.url, pid)
				if err := VerifyHashChain(pid, links); err != nil {
					t.Fatalf("%s: process %s: %v", stage, pid, err)
				}
				seen := map[string]bool{}
				for _, id := range ids {
					if seen[id] {
						t.Fatalf("%s: message %s scheduled twice", stage, id)
					}
					seen[id] = true
				}
				for i, m := range msgs {
					if ack[i].Load() && pids[i%nprocs] == pid && !seen[m.ID()] {
						t.Fatalf("%s: acknowledged message %d (%s) is missing", stage, i, m.ID())
					}
				}
			}
		}
		verify("after restart")

		// Senders retry everything they sent (acknowledged or not) and send the rest.
		for i, m := range msgs {
			code, body, err := post(su.url+"/", m.Bytes())
			if err != nil || code != 200 {
				t.Fatalf("resend %d: %d %s %v", i, code, body, err)
			}
			ack[i].Store(true)
		}
		verify("after retries")
		for _, pid := range pids {
			if links, _ := fetchSchedule(t, su.url, pid); len(links) != perProc+1 {
				t.Fatalf("process %s has %d slots, want %d", pid, len(links), perProc+1)
			}
		}

		// Nothing acknowledged is missing from the permanent store.
		deadline := time.Now().Add(60 * time.Second)
		for {
			missing := 0
			for _, pid := range pids {
				links, ids := fetchSchedule(t, su.url, pid)
				for _, l := range links {
					if gw.item(l.AssignmentID) == nil {
						missing++
					}
				}
				for _, id := range ids {
					if gw.item(id) == nil {
						missing++
					}
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d items never reached the permanent store\n%s", missing, su.stderr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// fetchSchedule pages through a process's schedule over HTTP in nonce mode and
// returns its chain links (checking every assignment's signature) and the
// scheduled item ids in order (the process first).
func fetchSchedule(t *testing.T, base, pid string) ([]ChainLink, []string) {
	t.Helper()
	var links []ChainLink
	var ids []string
	from := "-1"
	for {
		resp, err := crashClient.Get(base + "/" + pid + "?process-id=" + pid + "&limit=97&show-anchor&from-nonce=" + from)
		if err != nil {
			t.Fatal(err)
		}
		var page PageJSON
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Edges {
			a := e.Node.Assignment
			n, _ := strconv.ParseInt(tagValue(a.Tags, "Nonce"), 10, 64)
			if e.Cursor != strconv.FormatInt(n, 10) {
				t.Fatalf("cursor %s for nonce %d", e.Cursor, n)
			}
			if err := verifyAssignmentJSON(a); err != nil {
				t.Fatalf("nonce %d: %v", n, err)
			}
			links = append(links, ChainLink{Nonce: n, AssignmentID: a.ID, HashChain: tagValue(a.Tags, "Hash-Chain")})
			ids = append(ids, e.Node.Message.ID)
			from = e.Cursor
		}
		if !page.PageInfo.HasNextPage {
			return links, ids
		}
	}
}

// verifyAssignmentJSON rebuilds an assignment item from its JSON (shown with
// show-anchor, so the anchor is there) and verifies its signature and id.
func verifyAssignmentJSON(a AssignmentInnerJSON) error {
	sig, err1 := ans104.DecodeBase64URL(a.Signature)
	owner, err2 := ans104.DecodeBase64URL(a.Owner.Key)
	if err1 != nil || err2 != nil || a.Anchor == nil {
		return fmt.Errorf("assignment %s: undecodable JSON", a.ID)
	}
	anchor, err := ans104.DecodeBase64URL(*a.Anchor)
	if err != nil || len(anchor) != 32 {
		return fmt.Errorf("assignment %s: anchor %q", a.ID, *a.Anchor)
	}
	typ := ans104.TypeEd25519
	if len(owner) == 512 {
		typ = ans104.TypeArweave
	}
	tags := make([]ans104.Tag, len(a.Tags))
	for i, tg := range a.Tags {
		tags[i] = ans104.Tag{Name: tg.Name, Value: tg.Value}
	}
	rawTags := ans104.EncodeTags(tags)
	b := binary.LittleEndian.AppendUint16(nil, uint16(typ))
	b = append(b, sig...)
	b = append(b, owner...)
	b = append(b, 0, 1)
	b = append(b, anchor...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(tags)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(rawTags)))
	b = append(b, rawTags...)
	it, err := ans104.Parse(b)
	if err != nil {
		return err
	}
	if it.ID() != a.ID || it.OwnerAddress() != a.Owner.Address {
		return fmt.Errorf("assignment %s: rebuilt id %s", a.ID, it.ID())
	}
	return it.Verify()
}
