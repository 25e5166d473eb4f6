package su

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestScheduledUsesMessageIndex guards the duplicate lookup the scheduler runs
// before every batch it signs: it must probe su_slots_message, not walk the
// process's whole schedule (which both SQLite and PostgreSQL did, without
// statistics, when the query also named the process).
func TestScheduledUsesMessageIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		st, _ := b.open(t)
		s := st.(*sqlStore)
		// One long schedule, and no statistics (no ANALYZE), as a new SU has.
		batch := &Batch{}
		for i := range int64(2000) {
			batch.Slots = append(batch.Slots, slotRec("p1", i, i, fmt.Sprint("m", i), nil))
		}
		if err := st.Commit(ctx, batch); err != nil {
			t.Fatal(err)
		}
		explain := "EXPLAIN QUERY PLAN "
		if s.name == "postgres" {
			explain = "EXPLAIN "
		}
		r, err := s.read.query(ctx, explain+scheduledQuery(3), "m1", "m2", "zz")
		if err != nil {
			t.Fatal(err)
		}
		var plan strings.Builder
		for r.Next() {
			var cols []any
			if s.name == "postgres" {
				var line string
				cols = []any{&line}
				if err := r.Scan(cols...); err != nil {
					t.Fatal(err)
				}
				plan.WriteString(line + "\n")
				continue
			}
			var id, parent, notused int
			var detail string
			if err := r.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(detail + "\n")
		}
		r.Close()
		if !strings.Contains(plan.String(), "su_slots_message") || strings.Contains(plan.String(), "pkey") || strings.Contains(plan.String(), "autoindex") {
			t.Fatalf("the duplicate lookup does not probe su_slots_message alone:\n%s", plan.String())
		}
		got, err := st.Scheduled(ctx, "p1", []string{"m1", "m1999", "nope"})
		if err != nil || len(got) != 2 || got["m1999"].Nonce != 1999 {
			t.Fatalf("scheduled: %v %v", got, err)
		}
		if other, err := st.Scheduled(ctx, "p2", []string{"m1"}); err != nil || len(other) != 0 {
			t.Fatalf("another process's slot was reported: %v %v", other, err)
		}
	})
}
