/**
 * One attempt of one job as a single map key (acknowledgements, lease tokens, metrics). A job id
 * never holds U+0000 (`JobIdSchema` allows letters, digits, `.`, `_`, `-`), so no two attempts share a key.
 */
export function attemptKey(id: string, attempt: number): string {
  return `${id}\u0000${attempt}`;
}
