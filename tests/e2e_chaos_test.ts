/**
 * Zero loss under chaos, end to end and with the default --max-attempts: real queen and worker
 * processes, workers killed with SIGKILL and restarted, frozen with SIGSTOP past the lease, and
 * the queen killed with SIGKILL and restarted on the same data, while jobs print numbered
 * lines. The fault schedule comes from a seed (STRIDER_CHAOS_SEED to replay one), printed on
 * failure. `deno task soak` runs the same chaos bigger and longer.
 */
import { deepEqual, equal } from "node:assert/strict";
import { runChaos } from "./helpers/chaos.ts";

const seed = Number(Deno.env.get("STRIDER_CHAOS_SEED") ?? 1207);

Deno.test({
  name: "chaos: workers killed and frozen, the queen killed; no job lost, no line lost or doubled",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const lines: string[] = [];
    const report = await runChaos({
      seed,
      jobs: 32,
      workers: 3,
      capacity: 2,
      lines: 300,
      jobSeconds: [2, 5],
      faultsPerMinute: 6,
      faultSeconds: 30,
      lease: 4,
      deadlineSeconds: 105,
      firstFaults: ["worker-kill", "worker-stop", "queen-kill"],
      log: (line) => lines.push(line),
    });
    const context = `seed ${seed} (replay with STRIDER_CHAOS_SEED=${seed})\n` +
      `${lines.join("\n")}\n${JSON.stringify(report, null, 2)}`;
    deepEqual(report.problems, [], context);
    equal(report.unfinished, 0, context);
    equal(report.results.lost ?? 0, 0, context);
    equal(report.results.passed, 32, context);
    equal(report.linesChecked, 32 * 300, context);
    equal(report.faults["worker-kill"] > 0 && report.faults["worker-stop"] > 0, true, context);
    equal(report.faults["queen-kill"] > 0, true, context);
    console.log(
      `chaos seed ${seed}: ${JSON.stringify(report.faults)}; attempts that started per job: ` +
        `${JSON.stringify(report.attempts)}; ${(report.elapsedMs / 1000).toFixed(1)} s`,
    );
  },
});
