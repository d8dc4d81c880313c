/**
 * One `deno task release` (archive mode) per test process, into a temp folder, shared by the
 * release and install tests. The npm runtime packages are cached between runs
 * (~/.cache/strider-release, or STRIDER_RELEASE_CACHE).
 */
import { join } from "node:path";
import { ROOT } from "./cluster.ts";

let built: Promise<string> | undefined;
let scratch: string | undefined;

/**
 * A temp folder removed when the test process ends: a release and its unpacked copies take
 * hundreds of MiB.
 */
export async function releaseTemp(prefix: string): Promise<string> {
  if (!scratch) {
    const root = scratch = await Deno.makeTempDir({ prefix: "strider-release-tests-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(root, { recursive: true });
      } catch {
        // Already gone.
      }
    });
  }
  return await Deno.makeTempDir({ dir: scratch, prefix });
}

/** The folder `deno task release --mode archive` wrote; built on first use. */
export function releaseDist(): Promise<string> {
  built ??= (async () => {
    const dist = join(await releaseTemp("dist-"), "dist");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "scripts", "release.ts"), "--mode", "archive", "--out", dist],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (!out.success) throw new Error(`deno task release failed:\n${text}`);
    return dist;
  })();
  return built;
}

/** Runs a program to completion; returns its exit code and output. */
export async function runProgram(
  program: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; clearEnv?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(program, {
    args,
    env: options.env,
    cwd: options.cwd,
    clearEnv: options.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** The short commit id the release stamps (`-dirty` with uncommitted changes to tracked files). */
export async function expectedCommit(): Promise<string> {
  const id = (await runProgram("git", ["rev-parse", "--short=12", "HEAD"], { cwd: ROOT })).stdout
    .trim();
  const dirty = (await runProgram("git", ["status", "--porcelain", "--untracked-files=no"], {
    cwd: ROOT,
  })).stdout.trim();
  return dirty ? `${id}-dirty` : id;
}
