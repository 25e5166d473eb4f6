package su

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

func slotRec(pid string, nonce, ts int64, mid string, msg []byte) *SlotRecord {
	return &SlotRecord{ProcessID: pid, Nonce: nonce, MessageID: mid, AssignmentID: fmt.Sprintf("a-%s-%d", pid, nonce),
		Timestamp: ts, HashChain: "hc", BlockHeight: "000000000001", Assignment: []byte("assignment"), Message: msg}
}

// TestStore is the contract every Store implementation must meet; it runs on
// the embedded SQLite store and on PostgreSQL.
func TestStore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st, reopen := b.open(t)

		if _, err := st.Process(ctx, "p1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing process: %v", err)
		}
		if _, err := st.LastSlot(ctx, "p1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing last slot: %v", err)
		}
		p1 := &ProcessRecord{ID: "p1", Item: []byte("process"), Assignment: []byte("pa"), AssignmentID: "pa1", Nonce: 0, HashChain: "h0", Timestamp: 10, BlockHeight: "000000000007"}
		legacy := &ProcessRecord{ID: "p2", Item: []byte("legacy"), Timestamp: 11, BlockHeight: "000000000007"}
		batch := &Batch{Processes: []*ProcessRecord{p1, legacy}, Outbox: []OutboxItem{{ItemID: "x", Item: []byte("x")}}}
		for i := int64(1); i <= 5; i++ {
			batch.Slots = append(batch.Slots, slotRec("p1", i, 10+i/2, fmt.Sprint("m", i), []byte(fmt.Sprint("msg", i))))
			batch.Outbox = append(batch.Outbox, OutboxItem{ItemID: fmt.Sprint("m", i), Item: []byte(fmt.Sprint("msg", i))})
		}
		// m1 assigned again (a pure assignment) later, and to another process.
		batch.Slots = append(batch.Slots, slotRec("p1", 6, 20, "m1", nil), slotRec("p2", 0, 21, "m1", nil))
		if err := st.Commit(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// A batch that violates a constraint is written not at all.
		if err := st.Commit(ctx, &Batch{Slots: []*SlotRecord{slotRec("p1", 7, 30, "m7", nil), slotRec("p1", 3, 30, "dup", nil)},
			Outbox: []OutboxItem{{ItemID: "never", Item: []byte("n")}}}); err == nil {
			t.Fatal("duplicate nonce committed")
		}
		// Also when the failing statement comes after others that succeeded (on
		// PostgreSQL the statements go as one pipelined implicit transaction).
		if err := st.Commit(ctx, &Batch{Processes: []*ProcessRecord{{ID: "p3", Item: []byte("p3"), Timestamp: 1, BlockHeight: "000000000007"}},
			Slots: []*SlotRecord{slotRec("p1", 2, 30, "dup2", nil)}, Outbox: []OutboxItem{{ItemID: "never2", Item: []byte("n")}}}); err == nil {
			t.Fatal("duplicate nonce committed")
		}
		if _, err := st.Process(ctx, "p3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("process of a failed batch: %v", err)
		}

		st = reopen() // everything below reads what a restarted SU would see
		got, err := st.Process(ctx, "p1")
		if err != nil || got.AssignmentID != "pa1" || string(got.Item) != "process" || got.Legacy() || got.BlockHeight != "000000000007" {
			t.Fatalf("process: %+v %v", got, err)
		}
		if lg, err := st.Process(ctx, "p2"); err != nil || !lg.Legacy() || lg.Assignment != nil || lg.Timestamp != 11 {
			t.Fatalf("legacy process: %+v %v", lg, err)
		}
		last, err := st.LastSlot(ctx, "p1")
		if err != nil || last.Nonce != 6 || last.Message != nil {
			t.Fatalf("last slot: %+v %v", last, err)
		}
		sched, err := st.Scheduled(ctx, "p1", []string{"m1", "m3", "nope"})
		if err != nil || len(sched) != 2 || sched["m1"].Nonce != 1 || sched["m3"].Nonce != 3 {
			t.Fatalf("scheduled: %v %v", sched, err)
		}
		if s, err := st.SlotByID(ctx, "m1"); err != nil || s.Nonce != 1 || s.ProcessID != "p1" || string(s.Message) != "msg1" {
			t.Fatalf("slot by message id: %+v %v", s, err)
		}
		if s, err := st.SlotByID(ctx, "a-p2-0"); err != nil || s.ProcessID != "p2" || s.Message != nil {
			t.Fatalf("slot by assignment id: %+v %v", s, err)
		}
		if _, err := st.SlotByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing slot: %v", err)
		}

		nonces := func(rs []*SlotRecord) []int64 {
			var out []int64
			for _, r := range rs {
				out = append(out, r.Nonce)
			}
			return out
		}
		for _, c := range []struct {
			name string
			q    SlotQuery
			want []int64
		}{
			{"all", SlotQuery{Limit: 100}, []int64{1, 2, 3, 4, 5, 6}},
			{"limit", SlotQuery{Limit: 2}, []int64{1, 2}},
			{"after ts", SlotQuery{AfterTimestamp: ptr(int64(11)), ByTimestamp: true, Limit: 100}, []int64{4, 5, 6}},
			{"until ts", SlotQuery{UntilTimestamp: ptr(int64(11)), ByTimestamp: true, Limit: 100}, []int64{1, 2, 3}},
			{"ts window", SlotQuery{AfterTimestamp: ptr(int64(10)), UntilTimestamp: ptr(int64(12)), ByTimestamp: true, Limit: 100}, []int64{2, 3, 4, 5}},
			{"nonce window", SlotQuery{AfterNonce: ptr(int64(2)), UntilNonce: ptr(int64(4)), Limit: 100}, []int64{3, 4}},
			// Stops once the rows before the last hold more than MaxBytes.
			{"max bytes", SlotQuery{Limit: 100, MaxBytes: 1}, []int64{1, 2}},
			{"max bytes above all", SlotQuery{Limit: 100, MaxBytes: 1 << 30}, []int64{1, 2, 3, 4, 5, 6}},
		} {
			rs, err := st.Slots(ctx, "p1", c.q)
			if err != nil || !slices.Equal(nonces(rs), c.want) {
				t.Errorf("%s: %v %v, want %v", c.name, nonces(rs), err, c.want)
			}
		}

		out, err := st.PendingOutbox(ctx, 100)
		if err != nil || len(out) != 6 || out[0].ItemID != "x" || out[1].ItemID != "m1" {
			t.Fatalf("outbox: %v %v", out, err)
		}
		if err := st.DeleteOutbox(ctx, []int64{out[0].Seq, out[2].Seq}); err != nil {
			t.Fatal(err)
		}
		if out2, _ := st.PendingOutbox(ctx, 100); len(out2) != 4 || out2[0].ItemID != "m1" {
			t.Fatalf("outbox after delete: %v", out2)
		}

		if _, err := st.Meta(ctx, "height"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing meta: %v", err)
		}
		for _, v := range []string{"5", "6"} {
			if err := st.SetMeta(ctx, "height", v); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := st.Meta(ctx, "height"); err != nil || v != "6" {
			t.Fatalf("meta %q %v", v, err)
		}
	})
}
