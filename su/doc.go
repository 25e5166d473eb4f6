// Package su is the AO Scheduler Unit: it orders the messages of the processes it
// hosts. Every scheduled item gets a gap-free nonce, a timestamp that never goes
// backwards within its process, the permanent store's block height and a
// hash-chain link, in an Assignment data item signed by the SU wallet. The
// assignment and the message are committed to stable storage before the sender is
// told they were accepted, and are then published to the permanent store from a
// durable outbox.
//
// The wire behaviour (routes, JSON shapes, tags and their order, the legacy
// Hash-Chain) follows the reference SU, permaweb/ao servers/su, as described in
// units.md §3 of the protocol reference. Differences are deliberate and documented
// where they occur: retries of an already scheduled message return the existing
// assignment instead of an error, timestamps are monotonic per process, pages
// never end inside a run of equal timestamps, and no SU-signed bundle wrapper is
// made per slot (the slot is stored as its two items).
//
// Layout: Scheduler is the core (no HTTP); Store is the storage interface with an
// embedded SQLite and a PostgreSQL implementation; Chain is the permanent store;
// Server puts HTTP in front of them.
package su
