import { randomUUID } from 'node:crypto';

/**
 * A random UUID held as one string. Node builds `randomUUID()` by joining twenty pieces, and V8 keeps a join that
 * long as a tree of strings, not as the 36 characters: about 30 objects and 1.3 KB of heap where a flat copy takes
 * one object and 56 bytes, for as long as the id lives. An id kept per connection (several a user) is that, times
 * every connection, for the collector to mark over and over; docs/benchmarks.md ("Where a user's heap goes") has
 * the heap snapshots. The copy is made from bytes, so it is flat whatever V8 does with joins.
 */
export function flatUuid(): string {
	return Buffer.from(randomUUID(), 'latin1').toString('latin1');
}
