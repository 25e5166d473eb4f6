package cu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aonode/aonode/ans104"
	"github.com/aonode/aonode/cu/wasm"
)

// weaveDriveModuleTags are the test aos module's tags plus Extension:
// WeaveDrive.
func weaveDriveModuleTags() []ans104.Tag {
	return []ans104.Tag{{Name: "Module-Format", Value: wasm.FormatEmscripten4}, {Name: "Input-Encoding", Value: "JSON-1"},
		{Name: "Output-Encoding", Value: "JSON-1"}, {Name: "Memory-Limit", Value: "1-gb"}, {Name: "Compute-Limit", Value: "9000000000000"},
		{Name: "Extension", Value: "WeaveDrive"}}
}

// putItem stores a data item signed by signer on the gateway (pending until
// mined) and returns its id.
func (n *network) putItem(signer ans104.Signer, data string, tags ...ans104.Tag) string {
	n.t.Helper()
	it, err := ans104.Sign(signer, []byte(data), ans104.Options{Tags: append(tags, ans104.Tag{Name: "Seq", Value: strconv.FormatInt(seq.Add(1), 10)})})
	if err != nil {
		n.t.Fatal(err)
	}
	it, _ = ans104.Parse(it.Bytes())
	if _, err := n.store.Put(context.Background(), it); err != nil {
		n.t.Fatal(err)
	}
	return it.ID()
}

// mine cuts a block and waits until the SU stamps messages with its height.
func (n *network) mine(pid string) int64 {
	n.t.Helper()
	b, _, err := n.store.Mine(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	h := n.store.Current().Height
	if b.Height > h {
		h = b.Height
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ts struct {
			BlockHeight any `json:"block_height"`
		}
		getJSON(n.t, n.suURL+"/timestamp?process-id="+pid, &ts)
		if got, _ := strconv.ParseInt(fmt.Sprint(ts.BlockHeight), 10, 64); got >= h {
			return h
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("SU height %v, want %d", ts.BlockHeight, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const readDrive = `local f = io.open("/data/%s"); if not f then return "nil" end; local n = f:seek("end"); f:seek("set"); local d = f:read(n); f:close(); return d`

// TestWeaveDriveAdmissibility runs aos processes on the real gateway and SU:
// /data reads need an Attestation of the process's scheduler at a height <=
// the message's Block-Height (Individual also takes an Available record);
// Library without an attestation stops the process with a 422.
func TestWeaveDriveAdmissibility(t *testing.T) {
	n := newNetwork(t, weaveDriveModuleTags()...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sched := testWallet()
	other := cuWallet(t, "aonode cu test someone else")

	attested := n.putItem(clientKey, "attested data")
	n.putItem(sched, "", ans104.Tag{Name: "Data-Protocol", Value: "ao"}, ans104.Tag{Name: "Type", Value: "Attestation"}, ans104.Tag{Name: "Message", Value: attested})
	plain := n.putItem(clientKey, "plain data")
	byOther := n.putItem(clientKey, "attested by a stranger")
	n.putItem(other, "", ans104.Tag{Name: "Data-Protocol", Value: "ao"}, ans104.Tag{Name: "Type", Value: "Attestation"}, ans104.Tag{Name: "Message", Value: byOther})
	individual := n.putItem(clientKey, "individual data")
	n.putItem(sched, "", ans104.Tag{Name: "Data-Protocol", Value: "WeaveDrive"}, ans104.Tag{Name: "Type", Value: "Available"}, ans104.Tag{Name: "ID", Value: individual})
	boot := n.putItem(clientKey, `BOOTED = "booted from the drive"`) // no one's On-Boot here

	pid := n.spawn()
	pidInd := n.spawn(ans104.Tag{Name: "Availability-Type", Value: "Individual"})
	pidLib := n.spawn(ans104.Tag{Name: "Availability-Type", Value: "Library"})
	n.mine(pid)
	if err := n.su.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, cuURL := n.newCU(Config{}, false)

	read := func(pid, id, want string) {
		t.Helper()
		m := n.eval(pid, fmt.Sprintf(readDrive, id))
		if r := result(t, cuURL, pid, m); r.data() != want {
			_, at := n.assignment(pid, m)
			t.Errorf("%s reads %s at height %s: %q (error %s), want %q", pid, id, at["Block-Height"], r.data(), r.Error, want)
		}
	}
	read(pid, attested, "attested data")
	read(pid, plain, "nil")
	read(pid, byOther, "nil")
	read(pid, individual, "nil") // Available counts only in Individual mode
	read(pid, boot, "nil")
	read(pidInd, individual, "individual data")
	read(pidInd, attested, "attested data")
	read(pidInd, plain, "nil")

	// An Attestation not yet in a block at the message's height does not
	// count, and a read after it is mined does.
	late := n.putItem(clientKey, "late data")
	n.putItem(sched, "", ans104.Tag{Name: "Data-Protocol", Value: "ao"}, ans104.Tag{Name: "Type", Value: "Attestation"}, ans104.Tag{Name: "Message", Value: late})
	read(pid, late, "nil")
	n.mine(pid)
	read(pid, late, "late data")

	// Library: attested items are read, an unattested one stops the process.
	read(pidLib, attested, "attested data")
	m := n.eval(pidLib, fmt.Sprintf(readDrive, plain))
	var e struct {
		Error string `json:"error"`
	}
	if code := getJSON(t, fmt.Sprintf("%s/result/%s?process-id=%s", cuURL, m, pidLib), &e); code != http.StatusUnprocessableEntity {
		t.Fatalf("Library, unattested: status %d (%s)", code, e.Error)
	}
	t.Logf("Library, unattested: %s", e.Error)
}

// TestWeaveDriveOnBoot: aos reads its On-Boot item through the drive with
// no availability query, and runs it (runtime.md §12.6).
func TestWeaveDriveOnBoot(t *testing.T) {
	n := newNetwork(t, weaveDriveModuleTags()...)
	const code = `BOOTED = "booted from the drive"`
	boot := n.putItem(clientKey, code)
	// Watch what the CU asks the gateway.
	var (
		mu        sync.Mutex
		raw, gqls int
	)
	target, _ := url.Parse(n.gwURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	watch := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/graphql" {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			if bytes.Contains(b, []byte(boot)) {
				mu.Lock()
				gqls++
				mu.Unlock()
			}
		}
		if strings.HasSuffix(r.URL.Path, "/"+boot) {
			mu.Lock()
			raw++
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer watch.Close()
	pid := n.spawn(ans104.Tag{Name: "On-Boot", Value: boot})
	n.mine(pid)
	gwURL := n.gwURL
	n.gwURL = watch.URL
	_, cuURL := n.newCU(Config{}, false)
	n.gwURL = gwURL

	r := result(t, cuURL, pid, pid)
	mu.Lock()
	if raw == 0 || gqls != 0 {
		t.Errorf("On-Boot item: %d data reads, %d GraphQL queries naming it; want >0 and 0", raw, gqls)
	}
	mu.Unlock()
	if len(r.Error) > 0 {
		// aos reads it with file:read(file:seek("end")), which must read
		// from offset 0 as the reference drive does (cu/wasm driveFile).
		t.Fatalf("On-Boot: boot failed: %s", r.Error)
	}
	m := n.eval(pid, "return BOOTED")
	if got := result(t, cuURL, pid, m).data(); got != "booted from the drive" {
		t.Fatalf("On-Boot: BOOTED = %q (boot result %s %s)", got, r.Output, r.Error)
	}
}
