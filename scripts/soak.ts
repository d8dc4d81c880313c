/**
 * `deno task soak`: the chaos of tests/e2e_chaos_test.ts, bigger and longer, with sizes from
 * flags. Prints jobs by result, the attempts histogram, lines checked, faults injected and the
 * time taken; exits 1 when the zero-loss promise broke (and says how).
 *
 *   deno task soak --jobs 200 --workers 4 --capacity 2 --faults-per-minute 20 --duration 90
 */
import { parseArgs } from "node:util";
import { runChaos } from "../tests/helpers/chaos.ts";

const USAGE = `usage: deno task soak [flags]

  --jobs N               jobs submitted at the start (default 200)
  --workers N            worker processes (default 4)
  --capacity N           slots per worker (default 2)
  --lines N              numbered lines each job prints (default 2000)
  --job-seconds A-B      how long a job runs, in seconds (default 2-6)
  --faults-per-minute N  mean rate of faults (default 20)
  --duration S           seconds faults are injected for (default 90)
  --lease S              the queen's --lease (default 5)
  --max-attempts N       the queen's --max-attempts (default: the queen's, 3)
  --deadline S           give up waiting for jobs after S seconds (default: duration + 240)
  --seed N               fault schedule seed (default: random, printed)
`;

function number(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) {
    throw new TypeError(`--${flag} must be a number, not '${value}'`);
  }
  return n;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    jobs: { type: "string" },
    workers: { type: "string" },
    capacity: { type: "string" },
    lines: { type: "string" },
    "job-seconds": { type: "string" },
    "faults-per-minute": { type: "string" },
    duration: { type: "string" },
    lease: { type: "string" },
    "max-attempts": { type: "string" },
    deadline: { type: "string" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const [low, high] = (values["job-seconds"] ?? "2-6").split("-").map(Number);
if (!(low > 0) || !(high >= low)) throw new TypeError("--job-seconds takes A-B, e.g. 2-6");
const duration = number(values.duration, 90, "duration");
const seed = number(values.seed, Math.floor(Math.random() * 2 ** 31), "seed");
const options = {
  seed,
  jobs: number(values.jobs, 200, "jobs"),
  workers: number(values.workers, 4, "workers"),
  capacity: number(values.capacity, 2, "capacity"),
  lines: number(values.lines, 2000, "lines"),
  jobSeconds: [low, high] as [number, number],
  faultsPerMinute: number(values["faults-per-minute"], 20, "faults-per-minute"),
  faultSeconds: duration,
  lease: number(values.lease, 5, "lease"),
  maxAttempts: values["max-attempts"]
    ? number(values["max-attempts"], 3, "max-attempts")
    : undefined,
  deadlineSeconds: number(values.deadline, duration + 240, "deadline"),
};
console.log(`soak: ${JSON.stringify(options)}`);
const report = await runChaos({
  ...options,
  log: (line) => console.log(`  ${line}`),
});

const pad = (label: string) => label.padEnd(22);
console.log("");
console.log(`${pad("seed")}${report.seed}`);
console.log(
  `${pad("jobs by result")}${
    Object.entries(report.results).map(([k, v]) => `${k} ${v}`).join(", ") || "none"
  }${report.unfinished ? `, unfinished ${report.unfinished}` : ""}`,
);
console.log(
  `${pad("attempts (started)")}${
    Object.entries(report.attempts).map(([k, v]) => `${k}: ${v} jobs`).join(", ")
  }`,
);
console.log(`${pad("lines checked")}${report.linesChecked}`);
console.log(
  `${pad("faults injected")}${
    Object.entries(report.faults).map(([k, v]) => `${k} ${v}`).join(", ")
  }`,
);
console.log(`${pad("workspaces left")}${report.workspacesLeft}`);
console.log(`${pad("time")}${(report.elapsedMs / 1000).toFixed(1)} s`);
if (report.problems.length) {
  console.log(`\nthe zero-loss promise broke (${report.problems.length} problems):`);
  for (const problem of report.problems.slice(0, 50)) console.log(`  - ${problem}`);
  Deno.exit(1);
}
console.log("\nzero loss: every job final, none lost, every passed job's lines once and in order");
