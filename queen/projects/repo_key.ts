/**
 * One key per repository, whatever form its address takes, so that a webhook's `clone_url`,
 * `ssh_url` or `git_http_url` finds the project configured with any of the others.
 */

/**
 * The comparable form of a repository address or full name: host and path in lower case,
 * without scheme, user, port, `.git` suffix or trailing slash. A full name (`owner/repo`) is
 * returned in lower case as it is.
 *
 * @example
 * repoKey("git@github.com:Owner/Repo.git") === "github.com/owner/repo";
 * repoKey("https://github.com/owner/repo") === "github.com/owner/repo";
 */
export function repoKey(address: string): string {
  let text = address.trim();
  const scp = text.match(/^[A-Za-z0-9._-]+@([A-Za-z0-9.-]+):(?!\/\/)(.+)$/);
  if (scp) {
    text = `${scp[1]}/${scp[2]}`;
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    try {
      const url = new URL(text);
      text = url.protocol === "file:" ? url.pathname : `${url.hostname}${url.pathname}`;
    } catch {
      // Not a URL after all: compared as written.
    }
  }
  return text.replace(/\/+$/, "").replace(/\.git$/i, "").replace(/\/+$/, "").toLowerCase();
}
