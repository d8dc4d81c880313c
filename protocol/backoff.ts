/** How a retry loop waits: doubling from `minMs` up to `maxMs`, for at most `tries` retries. */
export interface Backoff {
  minMs: number;
  maxMs: number;
  /** Retries before giving up; unset retries for ever. */
  tries?: number;
  /**
   * Full jitter: a random wait between `minMs` and the doubling bound, so that many clients
   * that failed together (workers of a restarted queen) do not come back together.
   */
  jitter?: boolean;
}

/**
 * The wait before retry number `failures + 1` (`failures` counts from 0), or `undefined` once
 * `policy.tries` retries are spent.
 */
export function backoff(
  failures: number,
  policy: Backoff,
  random: () => number = Math.random,
): number | undefined {
  if (policy.tries !== undefined && failures >= policy.tries) return undefined;
  const bound = Math.min(policy.maxMs, policy.minMs * 2 ** Math.min(failures, 30));
  return policy.jitter ? policy.minMs + random() * (bound - policy.minMs) : bound;
}
