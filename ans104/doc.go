// Package ans104 reads, writes, signs and verifies ANS-104 data items and bundles,
// the signed envelopes every AO message, process, module and assignment travels in.
//
// The byte layout, signing payload and tag encoding follow what deployed software
// produces (npm arbundles 0.11.2, the ao SU), not the stale text of the standard:
// the signature covers deepHash(["dataitem", "1", type, owner, target, anchor,
// rawTags, data]) and tags are Avro-encoded as a single block.
//
// Parsing is lenient where arbundles is (any valid Avro block layout, up to
// DefaultMaxTagBytes of tags) and strict where the ao SU is (presence bytes must be
// 0 or 1). Creation is strict: at most 128 tags, non-empty names and values within
// the standard's size limits, and the canonical tag encoding the ao SU re-derives.
//
// A parsed DataItem is a view over the caller's buffer; it copies nothing, so the
// buffer must not be modified while the item is in use.
package ans104
