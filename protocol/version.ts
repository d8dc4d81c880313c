/** The strider release; printed by `--version` and sent in `drone:info`. */
export const VERSION = "0.2.0";

/**
 * The wire protocol's version, sent by every worker in `drone:info`. A release that changes what
 * a frame means raises it by one.
 */
// 1: the first release (0.1.0).
// 2: lease tokens in queue:new and drone:info.running; queue:take / queue:taken.
export const PROTOCOL_VERSION = 2;

/**
 * The oldest protocol a queen accepts: its own and the one before it, so that during a rolling
 * upgrade (the queen first, then the workers) the workers of the previous release keep working.
 * A queen therefore still understands the previous protocol's frames.
 */
export const OLDEST_PROTOCOL_VERSION = Math.max(1, PROTOCOL_VERSION - 1);

/**
 * Why a queen refuses a worker that speaks protocol `theirs` (from strider `theirVersion`), or
 * undefined when it accepts it. The message names both versions and what to upgrade.
 */
export function protocolRefusal(
  theirs: number,
  theirVersion: string,
  ours: { protocol: number; oldest: number; version: string } = {
    protocol: PROTOCOL_VERSION,
    oldest: OLDEST_PROTOCOL_VERSION,
    version: VERSION,
  },
): string | undefined {
  if (theirs >= ours.oldest && theirs <= ours.protocol) return undefined;
  // The worker's own words go into the queen's log: printable ASCII only.
  const them = theirVersion.replace(/[^\x20-\x7e]/g, "?");
  const accepted = ours.oldest === ours.protocol
    ? `protocol ${ours.protocol}`
    : `protocols ${ours.oldest} to ${ours.protocol}`;
  const fix = theirs > ours.protocol
    ? `upgrade the queen to strider ${them} or newer first, then its workers`
    : `upgrade this worker to strider ${ours.version}`;
  return `this worker (strider ${them}) speaks protocol ${theirs}; this queen ` +
    `(strider ${ours.version}) accepts ${accepted}: ${fix}`;
}
