/**
 * The flags every production start of the server gives Node: `npm start` (package.json), the image's `CMD`
 * (Dockerfile), and our benchmark server (bench/harness.ts), so the figures in docs/benchmarks.md are the product's.
 * tests/unit/node-flags.test.ts fails when one of them drifts from this list.
 *
 * `--max-semi-space-size=16`: V8's young generation at 2 × 16 MB instead of its default 2 × 32 MB. Every young
 * collection stops the event loop for as long as it takes to copy what survived: with the default, our server
 * stopped every ~4 s for 11–15 ms at the median (18–20 at p90) at the goal-1 load, the length of its p99 on a
 * quiet day; with 16 MB, every ~1 s for 4–5 ms (7 at most), for ~1 % more of its CPU in the collector and ~80 MB
 * less resident memory. 8 MB halves the pauses again but promotes more (more full collections, ~2 % more CPU).
 * docs/benchmarks.md, "Young-generation collections", has the runs.
 *
 * `--single-threaded-gc`: V8 collects on the event loop's thread only, without its helper threads (concurrent
 * marking, parallel scavenges and compaction, concurrent sweeping). A node is one event loop and a cluster runs a
 * node per core: the helpers then share the event loop's core, and waiting on them stopped it for 125–160 ms a few
 * times a minute at the goal-1 load, which set ours' p99. docs/benchmarks.md, "One thread for the collector", has
 * the runs, and what it costs on a machine with cores to spare.
 */
export const nodeFlags = ['--max-semi-space-size=16', '--single-threaded-gc'] as const;
