/**
 * The git commit a release was built from. scripts/release.ts replaces the stamp's text after
 * the colon in the bundle it ships; run from source, it reads "source".
 * @module
 */

/** The marker scripts/release.ts looks for; it must occur exactly once in a bundle. */
export const STAMP_PREFIX = "strider-commit:";
const STAMP = "strider-commit:source";

/** A commit id (`0123abcd4567`, `-dirty` when built from uncommitted changes) or "source". */
export const COMMIT: string = STAMP.slice(STAMP_PREFIX.length);
