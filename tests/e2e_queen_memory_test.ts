/**
 * The queen's memory while a job prints tens of MB (issue 16): a follower that stops reading must
 * not make the queen hold the log (it is caught up from the store once it reads again, every
 * event in order, on the same connection), and reading a large stored log back, through
 * `GET /log` or as a late SSE follower, must not grow the queen's memory by the log's size.
 * Bounds are generous: these are behaviours, not measurements (`deno task bench` measures).
 */
import { equal, ok } from "node:assert/strict";
import { api, customJob, startQueen, startWorker, waitForJob } from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

const MB = 1_000_000;

/** The queen's resident memory now, from /proc. */
function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/^VmRSS:\s+(\d+) kB/m)![1]) * 1024;
}

/** Samples `pid`'s resident memory every 10 ms until stopped; returns the highest seen. */
function samplePeak(pid: number) {
  let peak = rssOf(pid);
  const timer = setInterval(() => peak = Math.max(peak, rssOf(pid)), 10);
  return () => {
    clearInterval(timer);
    return Math.max(peak, rssOf(pid));
  };
}

/** `seq 1 n`'s output: numbered lines, so that order and completeness can be checked. */
function seqOutput(n: number): string {
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) lines.push(String(i));
  return lines.join("\n") + "\n";
}

/** Reads SSE frames from `reader` as they come: ids, and the stdout text in order. */
class SseReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = "";
  ids: number[] = [];
  stdout: string[] = [];
  stdoutBytes = 0;
  done = false;
  /** With `expected`: the output is compared as it comes instead of kept. */
  readonly #expected: string | undefined;
  mismatch = false;

  constructor(body: ReadableStream<Uint8Array>, expected?: string) {
    this.#reader = body.getReader();
    this.#expected = expected;
  }

  /** Reads until `until()` holds or the stream ends; returns whether the stream ended. */
  async read(until: () => boolean = () => false): Promise<boolean> {
    while (!until()) {
      const { value, done } = await this.#reader.read();
      if (done) return true;
      this.#buffer += this.#decoder.decode(value, { stream: true });
      let end = this.#buffer.indexOf("\n\n");
      while (end !== -1) {
        this.#frame(this.#buffer.slice(0, end));
        this.#buffer = this.#buffer.slice(end + 2);
        end = this.#buffer.indexOf("\n\n");
      }
    }
    return false;
  }

  #frame(text: string): void {
    const id = text.match(/^id: (\d+)$/m);
    const data = text.match(/^data: (.*)$/m);
    if (!id || !data) return; // a keepalive comment
    this.ids.push(Number(id[1]));
    const event = JSON.parse(data[1]);
    if (event.data.event === "job:cmd:stdout") {
      const text: string = event.data.text;
      if (this.#expected === undefined) this.stdout.push(text);
      else if (this.#expected.slice(this.stdoutBytes, this.stdoutBytes + text.length) !== text) {
        this.mismatch = true;
      }
      this.stdoutBytes += text.length;
    }
    if (event.data.event === "job:done") this.done = true;
  }

  cancel(): Promise<void> {
    return this.#reader.cancel();
  }
}

/** Checks a follower got every event once, in order, and exactly `expected` as stdout. */
function assertComplete(sse: SseReader, expected: string): void {
  ok(sse.done, "the follower got job:done");
  for (let i = 1; i < sse.ids.length; i++) {
    if (sse.ids[i] !== sse.ids[i - 1] + 1) {
      throw new Error(`event ${sse.ids[i - 1]} was followed by ${sse.ids[i]}: one went missing`);
    }
  }
  equal(sse.ids[0], 1);
  equal(sse.stdoutBytes, expected.length, "the follower got all of the output");
  if (sse.stdout.length) {
    ok(sse.stdout.join("") === expected, "the follower got the output in order, byte for byte");
  } else {
    ok(!sse.mismatch, "the follower got the output in order, byte for byte");
  }
}

async function withQueen(
  body: (queen: TestQueen, repo: string) => Promise<void>,
): Promise<void> {
  const queen = await startQueen({ args: ["--max-log-mib", "512"] });
  const worker = await startWorker(queen, {
    name: "printer",
    args: ["--capacity", "1", "--output-limit", "512"],
  });
  const repo = await makeRepo({ "README": "memory\n" });
  try {
    await body(queen, repo.path);
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await Deno.remove(repo.path, { recursive: true }).catch(() => {});
    await Deno.remove(queen.data, { recursive: true }).catch(() => {});
  }
}

/** Submits a job printing `seq 1 n`; returns its id. */
async function submitSeq(queen: TestQueen, repo: string, n: number, id: string) {
  const response = await api(queen, "/api/jobs", {
    method: "POST",
    body: JSON.stringify(customJob(repo, { test: `seq 1 ${n}` }, { job_id: id })),
  });
  equal(response.status, 201, await response.clone().text());
  await response.body?.cancel();
  return id;
}

Deno.test({
  name: "a follower that stops reading while a job prints ~180 MB costs the queen far less than " +
    "the log, and gets every event in order once it reads again",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await withQueen(async (queen, repo) => {
    const pid = queen.proc.child.pid;
    // 180 MB of output: large beside the noise of the queen's heap under load (tens of MB), so
    // that holding the log for the follower cannot pass for noise.
    const lines = 21_000_000;
    // The same job with nobody following first: the queen's heap grows to what streaming a log
    // takes (its young generation, some tens of MB) whoever follows, and stays so for a while.
    // What the stalled follower adds is measured from there.
    await waitForJob(queen, await submitSeq(queen, repo, lines, "unfollowed"), 600_000);
    const idle = rssOf(pid);

    const expected = seqOutput(lines);
    const id = await submitSeq(queen, repo, lines, "stalled");
    const response = await api(queen, `/api/jobs/${id}/events`, {
      signal: AbortSignal.timeout(600_000),
    });
    equal(response.status, 200);
    const sse = new SseReader(response.body!);
    // Read until output flows, then stop reading while the job prints the rest.
    await sse.read(() => sse.stdoutBytes > 0);
    const peakOf = samplePeak(pid);
    const job = await waitForJob(queen, id, 600_000);
    const stalledPeak = peakOf();
    equal(job.result, "passed");

    // Reading again, on the same connection: the rest comes from the store, then the end.
    const ended = await sse.read(() => sse.done);
    ok(!ended || sse.done, "the stream was not cut before job:done");
    assertComplete(sse, expected);
    await sse.cancel();

    const rise = stalledPeak - idle;
    console.log(
      `queen RSS: ${(idle / MB).toFixed(1)} MB after the same job unfollowed, peak with a ` +
        `stalled follower ` +
        `${(stalledPeak / MB).toFixed(1)} MB (+${(rise / MB).toFixed(1)}) for a ` +
        `${(expected.length / MB).toFixed(1)} MB log`,
    );
    // Holding the follower's backlog would add the log itself.
    ok(
      rise < expected.length / 2,
      `the queen grew by ${(rise / MB).toFixed(1)} MB for a stalled follower of a ` +
        `${(expected.length / MB).toFixed(1)} MB log`,
    );
  });
});

Deno.test({
  name: "reading a 50 MB stored log back (GET /log, and a late SSE follower from the start) " +
    "does not grow the queen's memory by the log's size",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await withQueen(async (queen, repo) => {
    const pid = queen.proc.child.pid;
    const lines = 6_600_000; // 50.5 MB of output
    const expected = seqOutput(lines);
    const id = await submitSeq(queen, repo, lines, "stored");
    equal((await waitForJob(queen, id, 600_000)).result, "passed");
    // Let the queen compress the finished log (reads then inflate its blocks) and settle.
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    for (const round of [1, 2]) {
      const before = rssOf(pid);
      const peakOf = samplePeak(pid);
      const response = await api(queen, `/api/jobs/${id}/log`, {
        signal: AbortSignal.timeout(300_000),
      });
      equal(response.status, 200);
      const decoder = new TextDecoder();
      let text = "";
      for await (const chunk of response.body!) text += decoder.decode(chunk, { stream: true });
      const rise = peakOf() - before;
      console.log(`GET /log round ${round}: queen RSS +${(rise / MB).toFixed(1)} MB`);
      ok(text.endsWith(expected), "GET /log gave the whole log");
      ok(
        rise < expected.length / 2,
        `GET /log of a ${(expected.length / MB).toFixed(1)} MB log grew the queen by ` +
          `${(rise / MB).toFixed(1)} MB`,
      );
    }

    // A late follower from the first event, twice in a row: the first replay grows the heap's
    // young generation as any stream does (tens of MB, whatever the log's size, given back by a
    // collection once quiet); the second shows whether the log itself is held.
    for (const round of [1, 2]) {
      const before = rssOf(pid);
      const peakOf = samplePeak(pid);
      const response = await api(queen, `/api/jobs/${id}/events`, {
        signal: AbortSignal.timeout(300_000),
      });
      const sse = new SseReader(response.body!);
      await sse.read();
      const rise = peakOf() - before;
      console.log(`SSE replay round ${round}: queen RSS +${(rise / MB).toFixed(1)} MB`);
      assertComplete(sse, expected);
      if (round === 1) continue;
      ok(
        rise < expected.length / 2,
        `replaying a ${(expected.length / MB).toFixed(1)} MB log to a follower grew the queen ` +
          `by ${(rise / MB).toFixed(1)} MB`,
      );
    }
  });
});

Deno.test({
  name: "forty followers that all stop reading cost the queen a bounded amount together, and " +
    "each gets the whole log once it reads again",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  await withQueen(async (queen, repo) => {
    const pid = queen.proc.child.pid;
    const lines = 5_000_000; // 38.9 MB of output
    const expected = seqOutput(lines);
    await waitForJob(queen, await submitSeq(queen, repo, lines, "unfollowed"), 600_000);
    const idle = rssOf(pid);
    const id = await submitSeq(queen, repo, lines, "crowd");
    const followers = await Promise.all(Array.from({ length: 40 }, async () => {
      const response = await api(queen, `/api/jobs/${id}/events`, {
        signal: AbortSignal.timeout(600_000),
      });
      equal(response.status, 200);
      return new SseReader(response.body!, expected);
    }));
    // Each reads until output flows, then all stop reading while the job prints the rest.
    await Promise.all(followers.map((sse) => sse.read(() => sse.stdoutBytes > 0)));
    const peakOf = samplePeak(pid);
    equal((await waitForJob(queen, id, 600_000)).result, "passed");
    const peak = peakOf();
    for (const sse of followers) {
      await sse.read(() => sse.done);
      assertComplete(sse, expected);
      await sse.cancel();
    }
    const rise = peak - idle;
    console.log(
      `queen RSS: ${(idle / MB).toFixed(1)} MB after the same job unfollowed, peak with 40 ` +
        `stalled followers ${(peak / MB).toFixed(1)} MB (+${(rise / MB).toFixed(1)})`,
    );
    // Each alone may have 8 MiB waiting (320 MiB for forty); together they share 64 MiB.
    ok(rise < 200 * MB, `forty stalled followers grew the queen by ${(rise / MB).toFixed(1)} MB`);
  });
});
