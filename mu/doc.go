// Package mu is the AO Messenger Unit: it takes signed data items from users,
// hands them to the process's Scheduler Unit, and then cranks: it pulls each
// result from a Compute Unit and pushes the outbox onward (messages, spawns,
// assignments), recursively, until nothing is left.
//
// The wire behaviour (routes, answers, the tags of pushed items) follows the
// reference MU, permaweb/ao servers/mu, as described in units.md §4. Unlike the
// reference, delivery is exactly-once and survives crashes: every step is a task
// in a durable queue (SQLite, WAL, synchronous=FULL), and an outbound item is
// signed and committed before it is first sent, so every retry sends the very
// same item (same id) and the SU's idempotent write makes the delivery count
// once. Each result's outputs are recorded under keys derived from the result
// (process, message, index), so pulling a result again never re-signs them.
//
// Tasks that push from one process to another run in outbox order (one FIFO per
// sender and target); everything else runs concurrently. A step that another
// unit refuses in a way no retry can change (413, 422, an invalid item) ends
// as failed and stays in the trace with its reason, so that it does not hold
// up its queue; anything else is retried. Users' items reach their SU on
// workers of their own, never queued behind the crank.
//
// Layout: Config and Server (server.go) front a core of three interfaces,
// SchedulerClient, ComputeClient and GatewayClient (clients.go, with HTTP
// implementations), the queue (queue.go over store.go), the crank steps
// (crank.go, with the pure tag rules in build.go), SU location (locate.go) and
// cron monitors (cron.go). With several CUs, PlacedCompute (placed.go) is the
// ComputeClient: package placement chooses each process's CU, with failover.
package mu
