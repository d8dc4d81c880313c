/**
 * Flags of the Deno runtime (not of strider) that every way of starting a queen passes: the
 * `queen` task in deno.json, `deno task start`, the release launchers, the compiled binary and the
 * bench. They cannot be set from inside the program: V8 reads them when the isolate is made.
 *
 * `--max-semi-space-size=16` (MiB): V8's young generation otherwise grows to two 32 MiB
 * semi-spaces within a second of a queen streaming a log, and stays there: measured on the log
 * bench, the queen's peak RSS was 191–282 MB with it at 32 and 168–175 MB (8 runs of 10) at 16,
 * at the same throughput. At 8 and 4, more output survives into the old generation: 179–231 MB.
 * See BENCHMARKS.md, "Queen memory during the log job".
 */
export const QUEEN_V8_FLAGS = ["--v8-flags=--max-semi-space-size=16"] as const;
