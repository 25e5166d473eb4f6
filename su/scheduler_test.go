package su

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aonode/aonode/ans104"
)

func newTestScheduler(t testing.TB, st Store, mod func(*SchedulerConfig)) *Scheduler {
	t.Helper()
	cfg := SchedulerConfig{Signer: suWallet(), Store: st, Height: func() int64 { return 1736676 }}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewScheduler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// schedule reads a process's whole schedule from the store: the process
// assignment (when it has one) then every slot, as chain links.
func schedule(t testing.TB, st Store, pid string) ([]ChainLink, []*SlotRecord) {
	t.Helper()
	ctx := context.Background()
	p, err := st.Process(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	var links []ChainLink
	if !p.Legacy() {
		links = append(links, ChainLink{Nonce: p.Nonce, AssignmentID: p.AssignmentID, HashChain: p.HashChain})
	}
	slots, err := st.Slots(ctx, pid, SlotQuery{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		links = append(links, ChainLink{Nonce: s.Nonce, AssignmentID: s.AssignmentID, HashChain: s.HashChain})
	}
	return links, slots
}

// checkSlots verifies every stored assignment: signature, tags in the
// reference order with the stored values, and the item it names.
func checkSlots(t testing.TB, pid string, slots []*SlotRecord, suAddress string) {
	t.Helper()
	var lastTS int64
	for _, s := range slots {
		a, err := ans104.Parse(s.Assignment)
		if err != nil || a.Verify() != nil || a.OwnerAddress() != suAddress || a.ID() != s.AssignmentID {
			t.Fatalf("nonce %d: assignment does not verify or is not the SU's: %v", s.Nonce, err)
		}
		want := AssignmentTags(pid, 0, s.Nonce, s.HashChain, s.BlockHeight, s.Timestamp, s.MessageID, nil)
		if len(a.Tags) < len(want) || fmt.Sprint(a.Tags[:len(want)]) != fmt.Sprint(want) {
			t.Fatalf("nonce %d: tags %v, want %v", s.Nonce, a.Tags, want)
		}
		if a.Target != nil || len(a.Anchor) != 32 || len(a.Data) != 0 {
			t.Fatalf("nonce %d: assignment target/anchor/data wrong", s.Nonce)
		}
		if s.Message != nil {
			m, err := ans104.Parse(s.Message)
			if err != nil || m.ID() != s.MessageID || m.Verify() != nil {
				t.Fatalf("nonce %d: stored message %v", s.Nonce, err)
			}
		}
		if s.Timestamp < lastTS {
			t.Fatalf("nonce %d: timestamp %d went back from %d", s.Nonce, s.Timestamp, lastTS)
		}
		lastTS = s.Timestamp
	}
}

func TestSchedulerAOP6(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st, reopen := b.open(t)
		s := newTestScheduler(t, st, nil)
		proc := processItem(t, suWallet().Address())
		pid := proc.ID()

		// A message to a process the SU does not host is refused.
		var ie *InputError
		if _, err := s.Submit(ctx, messageItem(t, pid).Bytes()); !errors.As(err, &ie) {
			t.Fatalf("message before process: %v", err)
		}
		r, err := s.Submit(ctx, proc.Bytes())
		if err != nil || r.ID != pid || r.Nonce != 0 || r.Existing {
			t.Fatalf("process: %+v %v", r, err)
		}
		if again, err := s.Submit(ctx, proc.Bytes()); err != nil || !again.Existing || again.AssignmentID != r.AssignmentID {
			t.Fatalf("process retry: %+v %v", again, err)
		}
		var msgs []*ans104.DataItem
		for i := range 5 {
			m := messageItem(t, pid)
			msgs = append(msgs, m)
			r, err := s.Submit(ctx, m.Bytes())
			if err != nil || r.ID != m.ID() || r.Nonce != int64(i+1) || r.Existing || r.BlockHeight != "000001736676" {
				t.Fatalf("message %d: %+v %v", i, r, err)
			}
		}
		// A retry gets the existing assignment back and takes no nonce.
		first, _ := st.Scheduled(ctx, pid, []string{msgs[0].ID()})
		r2, err := s.Submit(ctx, msgs[0].Bytes())
		if err != nil || !r2.Existing || r2.Nonce != 1 || r2.AssignmentID != first[msgs[0].ID()].AssignmentID {
			t.Fatalf("retry: %+v %v", r2, err)
		}
		// Assign an existing transaction, with Exclude tags; assigning it again returns the first assignment.
		// A message already on the process is not assigned to it again.
		if ra, err := s.Assign(ctx, pid, msgs[1].ID(), false, nil); err != nil || !ra.Existing || ra.Nonce != 2 || ra.ID != ra.AssignmentID {
			t.Fatalf("assign of a scheduled message: %+v %v", ra, err)
		}
		other := messageItem(t, pid) // never posted: a transaction known elsewhere
		ra, err := s.Assign(ctx, pid, other.ID(), false, []string{"Data", "Anchor"})
		if err != nil || ra.Nonce != 6 || ra.ID != ra.AssignmentID || ra.Existing {
			t.Fatalf("assign: %+v %v", ra, err)
		}
		if ra2, err := s.Assign(ctx, pid, other.ID(), false, nil); err != nil || !ra2.Existing || ra2.ID != ra.ID {
			t.Fatalf("assign retry: %+v %v", ra2, err)
		}

		// A restarted scheduler on the same data continues the chain.
		s.Close()
		st = reopen()
		s2 := newTestScheduler(t, st, nil)
		r3, err := s2.Submit(ctx, messageItem(t, pid).Bytes())
		if err != nil || r3.Nonce != 7 {
			t.Fatalf("after restart: %+v %v", r3, err)
		}
		if r4, err := s2.Submit(ctx, msgs[4].Bytes()); err != nil || !r4.Existing || r4.Nonce != 5 {
			t.Fatalf("retry after restart: %+v %v", r4, err)
		}

		links, slots := schedule(t, st, pid)
		if len(links) != 8 {
			t.Fatalf("%d slots, want 8", len(links))
		}
		if err := VerifyHashChain(pid, links); err != nil {
			t.Fatal(err)
		}
		checkSlots(t, pid, slots, suWallet().Address())
		a, _ := ans104.Parse(slots[5].Assignment)
		if v, _ := a.Tag("Message"); v != other.ID() || len(a.Tags) != 12 || a.Tags[10].Value != "Data" || a.Tags[11] != (ans104.Tag{Name: "Exclude", Value: "Anchor"}) {
			t.Fatalf("assign tags %v", a.Tags)
		}
		if slots[5].Message != nil {
			t.Fatal("a pure assignment stored a message")
		}
		p, _ := st.Process(ctx, pid)
		pa, _ := ans104.Parse(p.Assignment)
		if _, ok := pa.Tag("Message"); ok || len(pa.Tags) != 9 {
			t.Fatalf("process assignment tags %v", pa.Tags)
		}
	})
}

func TestSchedulerLegacy(t *testing.T) {
	ctx := context.Background()
	st, _ := backends[0].open(t)
	s := newTestScheduler(t, st, func(c *SchedulerConfig) { c.Legacy = true })
	proc := processItem(t, suWallet().Address())
	pid := proc.ID()
	if r, err := s.Submit(ctx, proc.Bytes()); err != nil || r.Nonce != -1 || r.AssignmentID != "" {
		t.Fatalf("legacy process: %+v %v", r, err)
	}
	for i := range 3 {
		if r, err := s.Submit(ctx, messageItem(t, pid).Bytes()); err != nil || r.Nonce != int64(i) {
			t.Fatalf("legacy message %d: %+v %v", i, r, err)
		}
	}
	links, slots := schedule(t, st, pid)
	if len(links) != 3 || links[0].Nonce != 0 {
		t.Fatalf("legacy schedule %v", links)
	}
	if err := VerifyHashChain(pid, links); err != nil { // the first message carries SHA-256(process id)
		t.Fatal(err)
	}
	checkSlots(t, pid, slots, suWallet().Address())
}

// TestSchedulerClock: timestamps never go backwards within a process even when
// the clock does, and the first message sorts strictly after the process.
func TestSchedulerClock(t *testing.T) {
	ctx := context.Background()
	st, _ := backends[0].open(t)
	var now atomic.Int64
	now.Store(1_000_000)
	s := newTestScheduler(t, st, func(c *SchedulerConfig) { c.Now = now.Load })
	proc := processItem(t, suWallet().Address())
	s.Submit(ctx, proc.Bytes())
	var got []int64
	for _, clock := range []int64{1_000_000, 999_000, 1_000_005, 1_000_005, 900_000} {
		now.Store(clock)
		r, err := s.Submit(ctx, messageItem(t, proc.ID()).Bytes())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Timestamp)
	}
	want := []int64{1_000_001, 1_000_001, 1_000_005, 1_000_005, 1_000_005}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("timestamps %v, want %v", got, want)
	}
}

// TestSchedulerConcurrent: many clients on several processes, with duplicate
// submissions racing each other; every process ends with a gap-free,
// duplicate-free, verifying chain and every message exactly once.
func TestSchedulerConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st, _ := b.open(t)
		s := newTestScheduler(t, st, nil)
		const procs, perProc = 4, 60
		pids := make([]string, procs)
		var msgs [][]*ans104.DataItem
		for i := range pids {
			p := processItem(t, suWallet().Address())
			if _, err := s.Submit(ctx, p.Bytes()); err != nil {
				t.Fatal(err)
			}
			pids[i] = p.ID()
			var ms []*ans104.DataItem
			for range perProc {
				ms = append(ms, messageItem(t, p.ID()))
			}
			msgs = append(msgs, ms)
		}
		var wg sync.WaitGroup
		receipts := make([]map[string]int64, procs)
		var mu sync.Mutex
		for i := range procs {
			receipts[i] = make(map[string]int64)
			for w := range 8 {
				wg.Go(func() {
					// Each worker sends every message of its slice twice, interleaved with others.
					for k := w; k < 2*perProc; k += 8 {
						m := msgs[i][k%perProc]
						r, err := s.Submit(ctx, m.Bytes())
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if old, ok := receipts[i][m.ID()]; ok && old != r.Nonce {
							t.Errorf("message %s got nonces %d and %d", m.ID(), old, r.Nonce)
						}
						receipts[i][m.ID()] = r.Nonce
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		for i, pid := range pids {
			links, slots := schedule(t, st, pid)
			if len(slots) != perProc {
				t.Fatalf("process %d: %d slots, want %d", i, len(slots), perProc)
			}
			if err := VerifyHashChain(pid, links); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, sl := range slots {
				if seen[sl.MessageID] {
					t.Fatalf("message %s scheduled twice", sl.MessageID)
				}
				seen[sl.MessageID] = true
				if receipts[i][sl.MessageID] != sl.Nonce {
					t.Fatalf("receipt nonce %d, stored %d", receipts[i][sl.MessageID], sl.Nonce)
				}
			}
		}
	})
}

// failingStore fails chosen commits, as a full disk or a lost database would.
type failingStore struct {
	Store
	fail func(b *Batch) bool
}

func (f *failingStore) Commit(ctx context.Context, b *Batch) error {
	if f.fail(b) {
		return errors.New("injected commit failure")
	}
	return f.Store.Commit(ctx, b)
}

// TestSchedulerCommitFailure: work signed after a failed commit is discarded,
// so the schedule stays gap-free; retried messages are scheduled afterwards.
func TestSchedulerCommitFailure(t *testing.T) {
	ctx := context.Background()
	st, _ := backends[0].open(t)
	var commits, failing atomic.Int64
	fs := &failingStore{Store: st, fail: func(b *Batch) bool {
		n := commits.Add(1)
		return n >= 3 && failing.Add(1) <= 2 // the 3rd and 4th commits fail
	}}
	s := newTestScheduler(t, fs, nil)
	proc := processItem(t, suWallet().Address())
	pid := proc.ID()
	if _, err := s.Submit(ctx, proc.Bytes()); err != nil {
		t.Fatal(err)
	}
	var ms []*ans104.DataItem
	for range 40 {
		ms = append(ms, messageItem(t, pid))
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			if _, err := s.Submit(ctx, m.Bytes()); err != nil {
				if !errors.Is(err, ErrRetry) {
					t.Errorf("want ErrRetry, got %v", err)
				}
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() == 0 {
		t.Fatal("no request saw the injected failure")
	}
	for _, m := range ms { // the senders retry
		var err error
		for try := 0; try < 5; try++ {
			if _, err = s.Submit(ctx, m.Bytes()); !errors.Is(err, ErrRetry) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if failing.Load() < 2 {
		t.Fatalf("only %d commits failed", failing.Load())
	}
	links, slots := schedule(t, st, pid)
	if len(slots) != len(ms) {
		t.Fatalf("%d slots, want %d", len(slots), len(ms))
	}
	if err := VerifyHashChain(pid, links); err != nil {
		t.Fatal(err)
	}
}

func TestSubmitRefusals(t *testing.T) {
	ctx := context.Background()
	st, _ := backends[0].open(t)
	s := newTestScheduler(t, st, nil)
	proc := processItem(t, suWallet().Address())
	s.Submit(ctx, proc.Bytes())
	pid := proc.ID()
	tampered := append([]byte(nil), messageItem(t, pid).Bytes()...)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"garbage", []byte("not a data item"), "Invalid data item"},
		{"bad signature", tampered, "does not verify"},
		{"no type", signItem(t, clientKey, "x", pid, nil, ans104.Tag{Name: "Data-Protocol", Value: "ao"}).Bytes(), "Type tag not present"},
		{"other type", signItem(t, clientKey, "x", pid, nil, ans104.Tag{Name: "Data-Protocol", Value: "ao"}, ans104.Tag{Name: "Type", Value: "Module"}).Bytes(), "Unsupported Type tag value"},
		{"no protocol", signItem(t, clientKey, "x", pid, nil, ans104.Tag{Name: "Type", Value: "Message"}).Bytes(), "Data-Protocol tag not present"},
		{"link", messageItem(t, pid, ans104.Tag{Name: "X", Value: "y+link"}).Bytes(), "cannot contain +link"},
		{"process without module", signItem(t, clientKey, "x", "", nil, ans104.Tag{Name: "Data-Protocol", Value: "ao"}, ans104.Tag{Name: "Type", Value: "Process"}).Bytes(), "Required Module and Scheduler"},
		{"message without target", signItem(t, clientKey, "x", "", nil, ans104.Tag{Name: "Data-Protocol", Value: "ao"}, ans104.Tag{Name: "Type", Value: "Message"}).Bytes(), "no target"},
	}
	for _, c := range cases {
		_, err := s.Submit(ctx, c.raw)
		var ie *InputError
		if !errors.As(err, &ie) || !contains(ie.Msg, c.want) {
			t.Errorf("%s: %v, want an input error containing %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct{ pid, tx, want string }{
		{"short", pid, "Invalid process-id"},
		{pid, "short", "43 characters"},
		{pid, "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "Invalid assign id"},
		{messageItem(t, pid).ID(), pid, "not found"},
	} {
		_, err := s.Assign(ctx, c.pid, c.tx, false, nil)
		var ie *InputError
		if !errors.As(err, &ie) || !contains(ie.Msg, c.want) {
			t.Errorf("assign %q %q: %v, want %q", c.pid, c.tx, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
