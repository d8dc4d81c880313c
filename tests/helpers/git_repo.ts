/** Real git repositories made in a temp folder for tests. */
import { join } from "node:path";

const GIT_ENV = {
  GIT_AUTHOR_NAME: "Strider Test",
  GIT_AUTHOR_EMAIL: "test@strider.invalid",
  GIT_COMMITTER_NAME: "Strider Test",
  GIT_COMMITTER_EMAIL: "test@strider.invalid",
  GIT_CONFIG_NOSYSTEM: "1",
};

/** Runs git in `cwd`; returns stdout, throws with stderr on failure. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: GIT_ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** A repository with `files` committed on `main`; returns its path and the commit id. */
export async function makeRepo(
  files: Record<string, string>,
  dir?: string,
): Promise<{ path: string; commit: string }> {
  const path = dir ?? await Deno.makeTempDir({ prefix: "strider-repo-" });
  await git(path, "init", "-q", "-b", "main");
  const commit = await commitFiles(path, files, "initial commit");
  return { path, commit };
}

/** Writes and commits `files` on the current branch; returns the new commit id. */
export async function commitFiles(
  path: string,
  files: Record<string, string>,
  message: string,
): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    await Deno.mkdir(join(path, name, ".."), { recursive: true });
    await Deno.writeTextFile(join(path, name), content);
  }
  await git(path, "add", "-A");
  await git(path, "commit", "-q", "--allow-empty", "-m", message);
  return await git(path, "rev-parse", "HEAD");
}
