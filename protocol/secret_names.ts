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
 * Whether a variable of this name holds a secret: one of its `_`-separated words (any case) is
 * TOKEN, PASSWORD, PASSWD, SECRET, KEY, APIKEY, CREDENTIAL or CREDENTIALS. So `DEPLOY_KEY`,
 * `AWS_SECRET`, `AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`, `password` and `NPM_TOKEN_RO` are;
 * `KEYBOARD` and `MONKEY` are not.
 */
export function isSecretName(name: string): boolean {
  return name.toUpperCase().split("_").some((word) => SECRET_WORDS.has(word));
}

/** Whether the worker masks `value` in output because of its variable's name. */
export function masksNamedValue(name: string, value: string): boolean {
  return isSecretName(name) && value.length >= MIN_NAMED_SECRET_LENGTH;
}
