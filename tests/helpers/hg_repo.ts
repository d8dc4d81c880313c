/** Real Mercurial repositories made in a temp folder for tests. */
import { join } from "node:path";

/** Runs hg in `cwd` without any user configuration; returns stdout, throws on failure. */
export async function hg(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("hg", {
    args,
    cwd,
    env: { HGRCPATH: "", HGPLAIN: "1", HGENCODING: "utf-8" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`hg ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** A Mercurial repository with `files` committed on `default`; returns its path and node id. */
export async function makeHgRepo(
  files: Record<string, string>,
): Promise<{ path: string; node: string }> {
  const path = await Deno.makeTempDir({ prefix: "strider-hg-" });
  await hg(path, "init");
  for (const [name, content] of Object.entries(files)) {
    await Deno.mkdir(join(path, name, ".."), { recursive: true });
    await Deno.writeTextFile(join(path, name), content);
  }
  await hg(path, "commit", "-A", "-u", "test", "-m", "x");
  return { path, node: await hg(path, "id", "--debug", "-i") };
}

/** `hg serve` of one repository on a free loopback port. */
export interface HgServe {
  origin: string;
  stop(): Promise<void>;
}

export async function startHgServe(path: string): Promise<HgServe> {
  const child = new Deno.Command("hg", {
    args: ["serve", "-a", "127.0.0.1", "-p", "0", "-R", path],
    env: { HGRCPATH: "", HGPLAIN: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) output += text;
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, 5000);
    try {
      await Promise.all([status, collected]);
    } finally {
      clearTimeout(timer);
    }
  };
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !exited) {
    const port = output.match(/bound to 127\.0\.0\.1:(\d+)/)?.[1];
    if (port) return { origin: `http://127.0.0.1:${port}`, stop };
    await new Promise((r) => setTimeout(r, 25));
  }
  await stop();
  throw new Error(`hg serve did not start: ${output}`);
}
