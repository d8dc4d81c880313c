/** One key for a job's attempt in maps and sets: a job id never holds a NUL, so keys never clash. */
export function attemptKey(id: string, attempt: number): string {
  return `${id}\u0000${attempt}`;
}
