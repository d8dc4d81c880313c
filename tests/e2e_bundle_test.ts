/**
 * The bundled build (`deno task bundle` → dist/strider.js), which is what a compiled binary
 * contains, runs a real job end to end: a queen and a worker from the bundle, a real repository,
 * and the bundle's own CLI following the job.
 */
import { equal, match } from "node:assert/strict";
import { join } from "node:path";
import { API_TOKEN, cli, ROOT, startQueen, startWorker } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

/** dist/strider.js when CI built it; otherwise a fresh bundle in a temp folder. */
async function bundle(): Promise<string> {
  const built = join(ROOT, "dist", "strider.js");
  try {
    if ((await Deno.stat(built)).size > 0) return built;
  } catch {
    // Not built yet: build it here.
  }
  const out = join(await Deno.makeTempDir({ prefix: "strider-bundle-" }), "strider.js");
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--platform",
      "deno",
      "--packages",
      "bundle",
      "-o",
      out,
      join(ROOT, "main.ts"),
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) throw new Error(new TextDecoder().decode(result.stderr));
  return out;
}

Deno.test("the bundled build runs a queen, a worker and a job", async () => {
  const entry = await bundle();
  const repo = await makeRepo({ "README": "bundled\n" });
  const queen = await startQueen({ entry });
  const worker = await startWorker(queen, { name: "bundled", entry });
  try {
    const version = await cli(["--version"], {}, entry);
    match(version.stdout, /^strider \d+\.\d+\.\d+/);
    const run = await cli(
      [
        "submit",
        "--queen",
        queen.url,
        "--repo",
        repo.path,
        "--test",
        "cat README; echo from the bundle",
        "--follow",
      ],
      { STRIDER_API_TOKEN: API_TOKEN },
      entry,
    );
    equal((await run.status).code, 0, run.stderr);
    match(run.stdout, /bundled\nfrom the bundle/);
    // The dashboard's browser script rides in the bundle, as committed.
    const script = await fetch(`${queen.url}/assets/app.js`);
    equal(script.status, 200);
    equal(
      await script.text(),
      await Deno.readTextFile(join(ROOT, "queen/dashboard/client/app.js")),
    );
  } finally {
    await worker.stop();
    await queen.proc.stop();
  }
});
