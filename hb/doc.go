// Package hb is aonode's AO-Core adapter: the HTTP surface in HyperBEAM's path
// grammar that today's clients call (aos 2.x in its default mainnet mode,
// @permaweb/aoconnect in MODE 'mainnet'), served over the legacy units.
//
// It is an adapter, not a second implementation: a Process pushed to /push
// and a Message pushed to /{pid}~process@1.0/push go through the MU's ingest
// (verified, scheduled on the SU, evaluated on the CU, outbox cranked by the
// MU), and results, slots, dry-runs and schedules are read from the CU and the
// SU. So a process is one schedule and one state whichever surface is used.
// The Adapter is the testable core; Handler is its thin HTTP skin; Locations
// lets the units schedule the processes these clients spawn.
package hb
