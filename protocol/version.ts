/** The strider release; printed by `--version` and sent in `drone:info`. */
export const VERSION = "0.1.0";

/**
 * The wire protocol's version. A queen refuses a worker whose major protocol version differs,
 * because the frames would not mean the same thing on both sides.
 */
// 2: lease tokens in queue:new and drone:info.running; queue:take / queue:taken.
export const PROTOCOL_VERSION = 2;
