/**
 * The one rule for which variables hold secrets. The worker masks the values of such variables
 * in output, and the queen shows them as `***` in every API response and page: whatever the
 * worker would hide, the API never shows.
 */

/** Words that make a variable secret when they are one of its `_`-separated parts. */
const SECRET_WORDS = new Set([
  "TOKEN",
  "PASSWORD",
  "PASSWD",
  "SECRET",
  "KEY",
  "APIKEY",
  "CREDENTIAL",
  "CREDENTIALS",
]);

/**
 * Values of secret-named variables shorter than this are not masked in output (too likely to be
 * ordinary text, such as `true`); the API hides them whatever their length.
 */
export const MIN_NAMED_SECRET_LENGTH = 6;

/**
 * Whether a variable (or config key) of this name holds a secret: one of its words, in any case,
 * is TOKEN, PASSWORD, PASSWD, SECRET, KEY, APIKEY, CREDENTIAL or CREDENTIALS. Words are separated
 * by `_`, `-`, `.` or a change to upper case. So `DEPLOY_KEY`, `AWS_SECRET`,
 * `AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`, `NPM_TOKEN_RO`, `password`, `api-key` and `apiKey`
 * are; `KEYBOARD`, `MONKEY` and `SECRETARY` are not.
 */
export function isSecretName(name: string): boolean {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase().split(/[_.-]/)
    .some((word) => SECRET_WORDS.has(word));
}

/** Whether the worker masks `value` in output because of its variable's name. */
export function masksNamedValue(name: string, value: string): boolean {
  return isSecretName(name) && value.length >= MIN_NAMED_SECRET_LENGTH;
}
