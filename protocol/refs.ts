/**
 * Checks for the names a job passes to git or Mercurial. They follow git's check-ref-format
 * rules, and additionally refuse anything starting with `-` so that no value can ever be read
 * as a command-line option (`--upload-pack=...`).
 */

// deno-lint-ignore no-control-regex
const FORBIDDEN_REF_CHARS = /[\x00-\x20\x7f~^:?*[\\]/;

/** Returns why `name` is not a safe ref name, or `undefined` when it is one. */
export function refNameProblem(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (name.startsWith("-")) return "must not start with '-'";
  if (FORBIDDEN_REF_CHARS.test(name)) {
    return "must not contain spaces, control characters or any of ~ ^ : ? * [ \\";
  }
  if (name.includes("..")) return "must not contain '..'";
  if (name.includes("@{")) return "must not contain '@{'";
  if (name.includes("//")) return "must not contain '//'";
  if (name.startsWith("/") || name.endsWith("/")) return "must not start or end with '/'";
  if (name.endsWith(".") || name.endsWith(".lock")) return "must not end with '.' or '.lock'";
  if (name.split("/").some((part) => part.startsWith("."))) {
    return "no path component may start with '.'";
  }
  return undefined;
}

/**
 * Returns why `refspec` is not an acceptable fetch refspec, or `undefined`. Accepted:
 * `[+]refs/<name>` optionally followed by `:refs/<name>`, as in `+refs/pull/141/merge`.
 */
export function fetchRefspecProblem(refspec: string): string | undefined {
  const body = refspec.startsWith("+") ? refspec.slice(1) : refspec;
  const parts = body.split(":");
  if (parts.length > 2) return "may contain at most one ':'";
  for (const part of parts) {
    if (!part.startsWith("refs/")) return "each side must start with 'refs/'";
    const problem = refNameProblem(part);
    if (problem) return problem;
  }
  return undefined;
}

/** `host.example/owner/repo.git`: a forge address without a scheme, as the seed writes it. */
const BARE_FORGE =
  /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+(?::\d{1,5})?\/[^\s]+$/;

/**
 * The fetchable form of a repository address: `github.com/jaredly/jared.git` (the seed's own
 * example) becomes `https://github.com/jaredly/jared.git`; anything else is left as written.
 * A scheme-less address cannot be a local path (those are absolute), so this reads it the one
 * way it can be fetched.
 */
export function normalizeRepoUrl(url: string): string {
  return BARE_FORGE.test(url) ? `https://${url}` : url;
}

const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/;
const URL_SCHEMES = new Set(["http:", "https:", "ssh:", "git:", "file:"]);

/**
 * Returns why `url` is not an acceptable repository location, or `undefined`. Accepted: an
 * absolute local path, `file://`, `http(s)://`, `ssh://`, `git://` and scp-like `user@host:path`.
 */
export function repoUrlProblem(url: string): string | undefined {
  if (url.length === 0) return "must not be empty";
  if (url.startsWith("-")) return "must not start with '-'";
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(url)) return "must not contain control characters";
  if (url.startsWith("/")) return undefined;
  if (SCP_LIKE.test(url)) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "must be an absolute path or a URL (https://, ssh://, git://, file://) or user@host:path";
  }
  if (!URL_SCHEMES.has(parsed.protocol)) {
    return `scheme '${parsed.protocol}' is not allowed; use https, http, ssh, git or file`;
  }
  // ssh receives `user@host` as one argument: a leading '-' would make it an option.
  if (parsed.username.startsWith("-") || parsed.hostname.startsWith("-")) {
    return "user and host must not start with '-'";
  }
  if (parsed.password) {
    return "must not carry a password; put credentials in repo.auth instead";
  }
  return undefined;
}
