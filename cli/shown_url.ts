/**
 * A URL as an error message may quote it: a `user:password@` in it becomes `***@`, since a
 * refusal is printed, and logged where the service's output is kept.
 * @module
 */

/** `text` with the credentials of a `scheme://user:password@host` address hidden. */
export function shownUrl(text: string): string {
  return text.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#\s]*@/, "$1***@");
}
