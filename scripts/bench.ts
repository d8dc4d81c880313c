/**
 * `deno task bench`: strider's speed beside the physical limit it is bounded by, each measure
 * beside its baseline, measured in the same run on the same machine. Prints a table and writes
 * bench/results.json.
 *
 * - `BENCH_ONLY=dispatch,log`: run only these measures (rows of the others are kept from the
 *   previous bench/results.json, each with its own date);
 * - `BENCH_QUICK=1`: smaller sizes, for a quick look (a full run takes about ten minutes).
 *
 * Measures live in scripts/bench/<name>.ts; simulated workers in scripts/bench/sim_worker.ts.
 */
import { totalmem } from "node:os";
import { join } from "node:path";
import { cluster } from "./bench/cluster.ts";
import { dispatch } from "./bench/dispatch.ts";
import { logThroughput, storeThroughput } from "./bench/log.ts";
import { logSize } from "./bench/log_size.ts";
import { recovery } from "./bench/recovery.ts";
import { dashboard } from "./bench/dashboard.ts";
import { restart } from "./bench/restart.ts";
import { scale } from "./bench/scale.ts";
import { throughput } from "./bench/throughput.ts";
import { turnaround } from "./bench/turnaround.ts";
import { builds } from "./bench/builds.ts";
import { reapAll, ROOT } from "./bench/lib.ts";
import type { Measure, Row } from "./bench/lib.ts";

const MEASURES: Measure[] = [
  dispatch,
  turnaround,
  throughput,
  logThroughput,
  storeThroughput,
  logSize,
  recovery,
  scale,
  restart,
  dashboard,
  builds,
  cluster,
];

const RESULTS = join(ROOT, "bench", "results.json");

/** Rows as an aligned text table. */
export function formatTable(rows: readonly Row[]): string {
  const num = (n: number | undefined, unit = "") =>
    n === undefined || Number.isNaN(n) ? "" : `${n}${unit}`;
  const header = [
    "measure",
    "median",
    "p99",
    "baseline",
    "median",
    "p99",
    "ratio",
    "target",
  ];
  const lines = rows.map((r) => [
    r.measure,
    num(r.median, ` ${r.unit}`),
    num(r.p99, ` ${r.unit}`),
    r.baseline,
    num(r.baseline_median, ` ${r.unit}`),
    num(r.baseline_p99, ` ${r.unit}`),
    r.ratio === null || Number.isNaN(r.ratio) ? "–" : `${r.ratio}×`,
    r.target ? `${r.target} ${r.met ? "✓" : "✗"}` : "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const format = (cells: string[]) =>
    cells.map((
      c,
      i,
    ) => (i === 0 || i === 3 || i === 7 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ").trimEnd();
  return [format(header), widths.map((w) => "-".repeat(w)).join("  "), ...lines.map(format)]
    .join("\n");
}

/** The same rows as a Markdown table (for BENCHMARKS.md). */
export function markdownTable(rows: readonly Row[]): string {
  const num = (n: number | undefined, unit: string) =>
    n === undefined || Number.isNaN(n) ? "" : `${n} ${unit}`;
  const out = [
    "| measure | median | p99 | baseline | baseline median | baseline p99 | ratio | target |",
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    out.push(
      `| ${r.measure} | ${num(r.median, r.unit)} | ${num(r.p99, r.unit)} | ${r.baseline} | ${
        num(r.baseline_median, r.unit)
      } | ${num(r.baseline_p99, r.unit)} | ${
        r.ratio === null || Number.isNaN(r.ratio) ? "–" : `${r.ratio}×`
      } | ${r.target ? `${r.target} ${r.met ? "✓" : "✗ missed"}` : ""} |`,
    );
  }
  return out.join("\n");
}

async function machine() {
  const text = async (program: string, args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command(program, { args, stdout: "piped" }).output())
        .stdout,
    ).trim();
  return {
    cores: navigator.hardwareConcurrency,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    cpu: (await Deno.readTextFile("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "",
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    kernel: await text("uname", ["-r"]),
  };
}

/** The 1-minute load average. */
function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

async function previousRows(): Promise<Row[]> {
  try {
    const previous = JSON.parse(await Deno.readTextFile(RESULTS));
    // Rows of the first, single-measure format carry no group: they are not kept.
    return (previous.rows ?? []).filter((r: Row) => r.group)
      .map((r: Row) => ({ ...r, date: r.date ?? previous.date }));
  } catch {
    return [];
  }
}

async function main(): Promise<number> {
  const only = (Deno.env.get("BENCH_ONLY") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((name) => !MEASURES.some((m) => m.name === name));
  if (unknown.length) {
    console.error(
      `BENCH_ONLY: unknown measure ${unknown.join(", ")}; ` +
        `known: ${MEASURES.map((m) => m.name).join(", ")}`,
    );
    return 2;
  }
  const quick = !!Deno.env.get("BENCH_QUICK") && Deno.env.get("BENCH_QUICK") !== "0";
  const chosen = MEASURES.filter((m) => only.length === 0 || only.includes(m.name));
  const date = new Date().toISOString();
  const rows: Row[] = [];
  const failures: Record<string, string> = {};
  const started = performance.now();
  const stop = () => {
    console.error("bench: interrupted; stopping every subprocess");
    reapAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  for (const measure of chosen) {
    const t0 = performance.now();
    const load = loadAverage();
    console.error(`bench: ${measure.name}${quick ? " (quick)" : ""} (load average ${load})`);
    try {
      const got = await measure.run({
        quick,
        log: (message) => console.error(`  ${message}`),
      });
      // The machine's load when the measure began: other work on it shows up in the figures.
      rows.push(...got.map((r) => ({ ...r, date, load })));
    } catch (error) {
      failures[measure.name] = (error as Error).stack ?? String(error);
      console.error(`bench: ${measure.name} failed: ${(error as Error).stack ?? error}`);
    } finally {
      await reapAll();
    }
    console.error(`bench: ${measure.name} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);

  console.log(formatTable(rows));
  console.log(
    "\nratio: strider's cost over the baseline's (time over time, or the baseline's rate over " +
      "strider's);\np99 of fewer than 100 samples is their maximum; MB = 10^6 bytes.",
  );
  const ran = new Set(chosen.map((m) => m.name));
  const kept = (await previousRows()).filter((r) => !ran.has(r.group));
  const order = MEASURES.map((m) => m.name);
  const all = [...kept, ...rows].toSorted((a, b) =>
    order.indexOf(a.group) - order.indexOf(b.group)
  );
  await Deno.mkdir(join(ROOT, "bench"), { recursive: true });
  await Deno.writeTextFile(
    RESULTS,
    JSON.stringify(
      {
        date,
        quick,
        only: only.length ? only : undefined,
        seconds: Math.round((performance.now() - started) / 1000),
        machine: await machine(),
        rows: all,
        failures: Object.keys(failures).length ? failures : undefined,
      },
      null,
      2,
    ) + "\n",
  );
  if (Deno.env.get("BENCH_MARKDOWN")) console.log("\n" + markdownTable(all));
  console.error(
    `bench: wrote ${RESULTS} in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  return Object.keys(failures).length ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
