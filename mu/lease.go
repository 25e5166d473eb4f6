package mu

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aonode/aonode/internal/sqldb"
)

// A shared queue (PostgreSQL) is run by several MUs at once. Tasks of one
// queue must run one at a time, in id order (that is what keeps one sender's
// pushes to one target in outbox order), so MUs lease whole queues, not
// tasks: a row in leases says which MU runs a queue until when. An MU
//
//   - takes the lease of a queue when it inserts the first pending task of a
//     queue nobody holds (insertTasks), and runs those tasks itself;
//   - claims, every poll, queues with pending tasks whose lease is missing or
//     expired (a dead MU's, or one an inserting MU could not take), and loads
//     their tasks;
//   - loads, every poll, tasks that other MUs added to the queues it holds;
//   - renews its leases every LeaseTTL/3, and drops from memory any queue whose
//     lease it lost (it stalled longer than the TTL and another MU claimed it);
//   - releases a queue's lease in the transaction that finishes its last
//     pending task, and all of them on Close.
//
// Every write about a task (its signed item, a retry, its end and successors)
// first locks its queue's lease row and checks that this MU still holds it
// (fence), so an MU that lost a lease cannot finish, re-sign or fan out a
// task another MU now runs. A step that had already sent an item when its MU
// died is sent again by the next MU with the same bytes (the item is committed
// before it is first sent), and the SU schedules an item id once: each message
// is delivered exactly once.

// errLostLease is returned by a write about a task whose queue's lease this
// MU no longer holds.
var errLostLease = errors.New("mu: the lease on this task's queue was lost to another MU")

// fence locks t's queue's lease row for the transaction and checks that this
// MU holds it (no-op on SQLite).
func (s *store) fence(tx *sqldb.Tx, t *task) error {
	if !s.shared() {
		return nil
	}
	var one int
	err := tx.QueryRow(`SELECT 1 FROM leases WHERE queue = ? AND owner = ? FOR SHARE`, t.Queue, s.owner).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return errLostLease
	}
	if err != nil {
		return fmt.Errorf("mu: lease of %s: %w", t.Queue, err)
	}
	return nil
}

// until is the expiry of a lease taken or renewed now.
func (s *store) until() int64 { return nowMS() + s.ttl.Milliseconds() }

// leaseNew takes the leases of the queues of newly inserted tasks where no
// other live MU holds them, and marks the others' tasks foreign.
func (s *store) leaseNew(tx *sqldb.Tx, ts []*task) error {
	mine := map[string]bool{}
	for _, t := range ts {
		if t.ID == 0 {
			continue
		}
		ok, seen := mine[t.Queue]
		if !seen {
			var owner string
			err := tx.QueryRow(`INSERT INTO leases(queue, owner, until) VALUES (?, ?, ?)
				ON CONFLICT(queue) DO UPDATE SET owner = excluded.owner, until = excluded.until
				WHERE leases.owner = excluded.owner OR leases.until < ? RETURNING owner`,
				t.Queue, s.owner, s.until(), nowMS()).Scan(&owner)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				ok = false
			case err != nil:
				return fmt.Errorf("mu: lease %s: %w", t.Queue, err)
			default:
				ok = true
			}
			mine[t.Queue] = ok
		}
		t.foreign = !ok
	}
	return nil
}

// releaseIfEmpty gives up the lease of queue when it has no pending task
// left, so that the next task of that queue goes to whichever MU produces it.
func (s *store) releaseIfEmpty(tx *sqldb.Tx, queue string) error {
	_, err := tx.Exec(`DELETE FROM leases WHERE queue = ? AND owner = ?
		AND NOT EXISTS (SELECT 1 FROM tasks WHERE queue = ? AND state = 0)`, queue, s.owner, queue)
	if err != nil {
		return fmt.Errorf("mu: release %s: %w", queue, err)
	}
	return nil
}

// claim takes up to n queues with pending tasks and no live lease, and
// returns their pending tasks.
func (s *store) claim(ctx context.Context, n int) ([]*task, error) {
	var queues []string
	err := s.write(ctx, func(tx *sqldb.Tx) error {
		queues = queues[:0]
		now := nowMS()
		rows, err := tx.Query(`INSERT INTO leases(queue, owner, until)
			SELECT DISTINCT t.queue, CAST(? AS TEXT), CAST(? AS BIGINT) FROM tasks t
			WHERE t.state = 0 AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.queue = t.queue AND l.until >= ?)
			LIMIT ?
			ON CONFLICT(queue) DO UPDATE SET owner = excluded.owner, until = excluded.until WHERE leases.until < ?
			RETURNING queue`, s.owner, s.until(), now, n, now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var q string
			if err := rows.Scan(&q); err != nil {
				return err
			}
			queues = append(queues, q)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("mu: claim queues: %w", err)
	}
	if len(queues) == 0 {
		return nil, nil
	}
	return s.queryTasks(ctx, `WHERE state = 0 AND queue = ANY(?) ORDER BY id`, queues)
}

// leasedSince returns the pending tasks of the queues this MU holds that were
// created at or after since (unix ms): those other MUs added.
func (s *store) leasedSince(ctx context.Context, since int64) ([]*task, error) {
	cols := "t." + strings.ReplaceAll(taskCols, ", ", ", t.")
	return s.queryTasksFrom(ctx, `SELECT `+cols+` FROM tasks t JOIN leases l ON l.queue = t.queue
		WHERE l.owner = ? AND t.state = 0 AND t.created_at >= ? ORDER BY t.id`, s.owner, since)
}

// renew extends this MU's leases and returns the queues it still holds.
func (s *store) renew(ctx context.Context) (map[string]bool, error) {
	held := map[string]bool{}
	err := s.write(ctx, func(tx *sqldb.Tx) error {
		clear(held)
		rows, err := tx.Query(`UPDATE leases SET until = ? WHERE owner = ? RETURNING queue`, s.until(), s.owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var q string
			if err := rows.Scan(&q); err != nil {
				return err
			}
			held[q] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("mu: renew leases: %w", err)
	}
	return held, nil
}

// releaseAll gives up every lease of this MU (on Close), so that the others
// take its queues at once instead of after the TTL.
func (s *store) releaseAll(ctx context.Context) error {
	return s.write(ctx, func(tx *sqldb.Tx) error {
		_, err := tx.Exec(`DELETE FROM leases WHERE owner = ?`, s.owner)
		return err
	})
}

// depth counts the pending tasks of the whole queue (every MU's, when
// shared): the queue depth a load balancer or an operator watches.
func (s *store) depth(ctx context.Context) (int64, error) {
	var n int64
	if err := s.d.QueryRow(ctx, `SELECT COUNT(*) FROM tasks WHERE state = 0`).Scan(&n); err != nil {
		return 0, fmt.Errorf("mu: queue depth: %w", err)
	}
	return n, nil
}

// share runs the shared queue's background work until ctx ends: claiming
// orphaned queues, loading tasks others added to this MU's queues, renewing
// leases.
func (s *Server) share(ctx context.Context) {
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	lastRenew := time.Now()
	since := nowMS()
	for {
		start := nowMS()
		if ts, err := s.st.claim(ctx, 64); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("claiming queues failed", "err", err)
			}
		} else if len(ts) > 0 {
			s.log.Info("claimed queues of the shared queue", "tasks", len(ts))
			s.route(ts)
		}
		// Tasks other MUs added commit within a moment of their created_at;
		// looking back a few seconds catches one committed late.
		if ts, err := s.st.leasedSince(ctx, since-5000); err == nil {
			s.route(ts)
			since = start
		}
		if time.Since(lastRenew) >= s.cfg.LeaseTTL/3 {
			renewAt := nowMS() - 1000 // margin: Created is stamped before the insert commits
			held, err := s.st.renew(ctx)
			if err == nil {
				lastRenew = time.Now()
				s.run.keepOnly(held, renewAt)
				s.in.keepOnly(held, renewAt)
			} else if ctx.Err() == nil {
				s.log.Warn("renewing leases failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// route hands loaded tasks to their runner (add skips those it has).
func (s *Server) route(ts []*task) {
	var in, run []*task
	for _, t := range ts {
		if t.Kind == kindIngest {
			in = append(in, t)
		} else {
			run = append(run, t)
		}
	}
	s.in.add(in...)
	s.run.add(run...)
}
