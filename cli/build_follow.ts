/**
 * Following a whole build (`strider submit --matrix ... --follow`): each job's output prefixed
 * by its name, then a summary table; exit 0 only if the build passed.
 * @module
 */
import type { BuildView, RecordedEvent } from "../protocol/mod.ts";
import { BuildViewSchema } from "../protocol/mod.ts";
import { requestJson } from "./api_client.ts";
import type { ApiTarget } from "./api_client.ts";
import type { Output } from "./client_commands.ts";
import { followJob } from "./follow.ts";

/** How often a followed build is looked at for its jobs' states. */
const POLL_MS = 500;

/** Writes a job's output line by line, each line prefixed with the job's name. */
class Prefixed {
  #partial = { out: "", err: "" };
  constructor(readonly prefix: string, readonly output: Output) {}

  write(stream: "out" | "err", text: string): void {
    const lines = (this.#partial[stream] + text).split("\n");
    this.#partial[stream] = lines.pop()!;
    for (const line of lines) this.output[stream](`${this.prefix} ${line}\n`);
  }

  flush(): void {
    for (const stream of ["out", "err"] as const) {
      if (this.#partial[stream]) this.output[stream](`${this.prefix} ${this.#partial[stream]}\n`);
      this.#partial[stream] = "";
    }
  }
}

function printPrefixed(event: RecordedEvent, to: Prefixed): void {
  const e = event.data;
  switch (e.event) {
    case "job:dispatched":
      return to.write("err", `--- attempt ${e.attempt} on ${e.drone}\n`);
    case "job:cmd:start":
      return to.write("err", `$ ${e.screencmd}\n`);
    case "job:cmd:stdout":
    case "job:stdout":
      return to.write("out", e.text);
    case "job:cmd:stderr":
    case "job:stderr":
      return to.write("err", e.text);
    case "job:done":
      if (e.error) to.write("err", `${e.error}\n`);
  }
}

/** The summary table printed when a followed build ends. */
export function summaryTable(build: BuildView): string {
  const rows = build.jobs.map((j) => [
    j.name,
    j.result ?? j.status,
    j.drone ?? "-",
    j.allow_failure ? "may fail" : "",
    j.id,
  ]);
  const head = ["JOB", "RESULT", "DRONE", "", "ID"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), ...rows.map(line), `build ${build.id} ${build.result ?? build.status}`]
    .join("\n") + "\n";
}

/** Follows every job of a build to the end; exit code 0 only if the build passed. */
export async function followBuild(api: ApiTarget, id: string, output: Output): Promise<number> {
  const path = `/api/builds/${encodeURIComponent(id)}`;
  const followers = new Map<string, Promise<void>>();
  let build = await requestJson(api, path, BuildViewSchema);
  const width = Math.max(...build.jobs.map((j) => j.name.length));
  output.err(`build ${id}: ${build.jobs.length} jobs\n`);
  while (true) {
    for (const job of build.jobs) {
      if (followers.has(job.id)) continue;
      const to = new Prefixed(`[${job.name.padEnd(width)}]`, output);
      followers.set(
        job.id,
        (async () => {
          for await (const event of followJob(api, job.id)) printPrefixed(event, to);
          to.flush();
        })().catch((error) => output.err(`[${job.name}] ${(error as Error).message}\n`)),
      );
    }
    if (build.status === "done") break;
    await new Promise((r) => setTimeout(r, POLL_MS));
    build = await requestJson(api, path, BuildViewSchema);
  }
  await Promise.all(followers.values());
  output.err(summaryTable(build));
  return build.result === "passed" ? 0 : 1;
}
