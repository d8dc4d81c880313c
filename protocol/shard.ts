/**
 * How `strider shard` splits a suite: every shard computes the same split from the same file
 * list and timings, so together the shards run every file exactly once. With recorded timings
 * the files are dealt longest first to the shard with the least time so far (a file with no
 * record counts as the average of those with one); without any, by count, round robin.
 * @module
 */
import type { ShardTimings } from "./matrix.ts";

/** Shard `index`'s (0-based) files out of `total`, in the order they were given. */
export function shardShare(
  files: readonly string[],
  index: number,
  total: number,
  timings: ShardTimings = {},
): string[] {
  if (!Number.isInteger(total) || total < 1) throw new RangeError("total must be at least 1");
  if (!Number.isInteger(index) || index < 0 || index >= total) {
    throw new RangeError(`index must be from 0 to ${total - 1}`);
  }
  const unique = [...new Set(files.filter((f) => f !== ""))];
  const sorted = [...unique].sort();
  const known = sorted.filter((f) => Object.hasOwn(timings, f)).map((f) => timings[f]);
  const mine = new Set<string>();
  if (!known.length) {
    sorted.forEach((file, i) => i % total === index && mine.add(file));
  } else {
    const average = known.reduce((a, b) => a + b, 0) / known.length;
    const cost = (f: string) => Object.hasOwn(timings, f) ? timings[f] : average;
    const order = [...sorted].sort((a, b) => cost(b) - cost(a) || (a < b ? -1 : 1));
    const loads = new Array<number>(total).fill(0);
    const counts = new Array<number>(total).fill(0);
    for (const file of order) {
      let best = 0;
      for (let s = 1; s < total; s++) {
        if (loads[s] < loads[best] || (loads[s] === loads[best] && counts[s] < counts[best])) {
          best = s;
        }
      }
      loads[best] += cost(file);
      counts[best]++;
      if (best === index) mine.add(file);
    }
  }
  return unique.filter((f) => mine.has(f));
}
