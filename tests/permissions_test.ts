/**
 * Each role's deno.json task runs with the fewest permissions it needs: the queen's set cannot
 * start a process, the worker's can.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { QUEEN_PERMISSIONS, ROOT, WORKER_PERMISSIONS } from "./helpers/cluster.ts";

const tasks = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks;
const flagsOf = (task: string) => task.split(/\s+/).filter((word) => word.startsWith("--allow-"));

async function trySpawn(permissions: string[]): Promise<{ code: number; stderr: string }> {
  const dir = await Deno.makeTempDir();
  const probe = join(dir, "probe.ts");
  await Deno.writeTextFile(
    probe,
    'await new Deno.Command("true").output(); console.log("spawned");',
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...permissions, probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(dir, { recursive: true });
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("the queen task runs without --allow-run and its permissions cannot spawn", async () => {
  const queenFlags = flagsOf(tasks.queen);
  deepEqual(queenFlags.toSorted(), QUEEN_PERMISSIONS.toSorted());
  ok(!queenFlags.some((flag) => flag.startsWith("--allow-run")));
  const result = await trySpawn(queenFlags);
  equal(result.code, 1);
  match(result.stderr, /NotCapable|Requires run access/);
});

Deno.test("the worker task's permissions can spawn job commands", async () => {
  const workerFlags = flagsOf(tasks.worker);
  deepEqual(workerFlags.toSorted(), WORKER_PERMISSIONS.toSorted());
  equal((await trySpawn(workerFlags)).code, 0);
});
