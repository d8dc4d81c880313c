/**
 * Binary output frames end to end: a job's multi-megabyte output, with invalid UTF-8, characters
 * split across reads and frames, NUL bytes and a secret, comes back the same through `GET /log`
 * and a live follower; a real worker sends binary frames only to a queen that announces them;
 * a worker that never announces them (protocol 2) still runs jobs with JSON output; and a hostile
 * worker's binary frames for another job, attempt, oversize or malformed are refused while the
 * queen stays up.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import type { QueenFrame, RecordedEvent, WorkerFrame } from "../protocol/mod.ts";
import {
  decodeOutputFrame,
  decodeQueenFrame,
  decodeWorkerFrame,
  encodeOutputFrame,
  MAX_FRAME_BYTES,
  OUTPUT_FRAME_VERSION,
  PROTOCOL_VERSION,
} from "../protocol/mod.ts";
import {
  api,
  customJob,
  ENTRY,
  getJob,
  Proc,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
  WORKER_PERMISSIONS,
  WORKER_TOKEN,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

const SECRET = "s3cr3t-€-value";

/**
 * About 3 MB of output: ASCII lines, 2-, 3- and 4-byte characters, NUL bytes, invalid bytes and
 * cut sequences, and the secret, in a seeded order so that 64 KiB reads and frames split them.
 */
function awkwardBytes(size: number): Uint8Array {
  const encoder = new TextEncoder();
  const pieces = [
    encoder.encode("plain line of text\n"),
    encoder.encode("é€😀"),
    encoder.encode("€€€€€€€€€€€"),
    encoder.encode(`token ${SECRET} end\n`),
    new Uint8Array([0x00, 0x61, 0x00]),
    new Uint8Array([0xff, 0xfe]),
    new Uint8Array([0xe2, 0x82, 0x0a]), // a 3-byte sequence cut short
    new Uint8Array([0xc3]), // a lead byte alone
    new Uint8Array([0xed, 0xa0, 0x80]), // an encoded surrogate: invalid in UTF-8
    new Uint8Array([0xf0, 0x9f, 0x98]), // a 4-byte sequence cut short
    encoder.encode("😀".repeat(20)),
  ];
  const out = new Uint8Array(size);
  let at = 0;
  let seed = 7;
  while (at < size) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const piece = pieces[seed % pieces.length];
    if (at + piece.length > size) break;
    out.set(piece, at);
    at += piece.length;
  }
  return out.subarray(0, at);
}

/** Where `needle` starts in `haystack`, or -1. */
function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (let i = haystack.indexOf(first); i >= 0; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let same = true;
    for (let j = 1; j < needle.length && same; j++) same = haystack[i + j] === needle[j];
    if (same) return i;
  }
  return -1;
}

/** Follows a job's events over SSE from the start until `job:done`. */
async function follow(queen: TestQueen, id: string): Promise<RecordedEvent[]> {
  const response = await api(queen, `/api/jobs/${id}/events`, {
    signal: AbortSignal.timeout(180_000),
  });
  ok(response.ok && response.body, `SSE: ${response.status}`);
  const events: RecordedEvent[] = [];
  let buffer = "";
  for await (const text of response.body.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").find((line) => line.startsWith("data: "));
      if (data) events.push(JSON.parse(data.slice(6)));
    }
  }
  return events;
}

Deno.test({
  name: "awkward output comes back the same through GET /log and a live follower",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const bytes = awkwardBytes(3_000_000);
    const repo = await makeRepo({ "README.md": "bytes\n" });
    await Deno.writeFile(join(repo.path, "out.bin"), bytes);
    for (const args of [["add", "out.bin"], ["commit", "-qm", "output"]]) {
      const done = await new Deno.Command("git", { args, cwd: repo.path }).output();
      equal(done.code, 0, new TextDecoder().decode(done.stderr));
    }
    const queen = await startQueen();
    const worker = await startWorker(queen, { name: "bytes" });
    try {
      const id = await submitJob(queen, {
        ...customJob(repo.path, { test: "echo BEGIN; cat out.bin; echo; echo END" }),
        secrets: { API_TOKEN: SECRET },
      });
      const followed = await follow(queen, id);
      const job = await waitForJob(queen, id, 180_000);
      equal(job.result, "passed", job.error ?? "");
      // What the worker reads as UTF-8 (each invalid sequence one U+FFFD), the secret masked.
      const expected = `BEGIN\n${new TextDecoder().decode(bytes)}\nEND\n`
        .replaceAll(SECRET, "***");
      ok(expected.includes("\ufffd") && expected.includes("\u0000") && expected.includes("😀"));
      const expectedBytes = new TextEncoder().encode(expected);

      const log = new Uint8Array(await (await api(queen, `/api/jobs/${id}/log`)).arrayBuffer());
      const at = indexOfBytes(log, expectedBytes.subarray(0, 64));
      ok(at >= 0, "the output's start is not in the log");
      deepEqual(log.subarray(at, at + expectedBytes.length), expectedBytes);
      ok(!new TextDecoder().decode(log).includes(SECRET), "the secret reached the log");

      // The live follower saw every event once, in order, and the same text.
      const numbers = followed.map((e) => e.n);
      deepEqual(numbers, numbers.map((_, i) => i + 1));
      const outputEvents = followed.filter((e) => e.data.event === "job:cmd:stdout");
      const seqs = outputEvents.map((e) => "seq" in e.data ? e.data.seq : 0);
      for (let i = 1; i < seqs.length; i++) ok(seqs[i] > seqs[i - 1], "seq went back");
      const shown = outputEvents.map((e) => "text" in e.data ? e.data.text : "").join("");
      equal(shown.length, expected.length);
      ok(shown === expected, "the follower's output differs from the job's");
    } finally {
      await worker.stop();
      await queen.proc.stop();
    }
  },
});

/** A queen that records every frame, text or binary, and announces binary output or not. */
function scriptedQueen(binary: boolean) {
  const frames: WorkerFrame[] = [];
  let binaryFrames = 0;
  let socket: WebSocket | undefined;
  const listening = Promise.withResolvers<number>();
  const controller = new AbortController();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: controller.signal,
    onListen: ({ port }) => listening.resolve(port),
  }, (req) => {
    const upgrade = Deno.upgradeWebSocket(req);
    const own = upgrade.socket;
    own.binaryType = "arraybuffer";
    socket = own;
    own.onopen = () =>
      own.send(JSON.stringify({
        event: "drone:query-info",
        ...(binary ? { binary_output: OUTPUT_FRAME_VERSION } : {}),
      }));
    const pinger = setInterval(() => {
      if (own.readyState === WebSocket.OPEN) {
        own.send(JSON.stringify({ event: "ping", t: Date.now() }));
      }
    }, 1_000);
    own.onclose = () => clearInterval(pinger);
    own.onmessage = (m) => {
      let frame: WorkerFrame;
      if (m.data instanceof ArrayBuffer) {
        binaryFrames++;
        const decoded = decodeOutputFrame(m.data);
        ok(decoded.ok, decoded.ok ? "" : decoded.error);
        frame = decoded.value.event;
      } else {
        const decoded = decodeWorkerFrame(m.data);
        ok(decoded.ok, `the worker sent an invalid frame: ${m.data}`);
        frame = decoded.value;
      }
      frames.push(frame);
      if ("seq" in frame) {
        own.send(
          JSON.stringify({
            event: "job:ack",
            id: frame.id,
            attempt: frame.attempt,
            seq: frame.seq,
          }),
        );
      }
    };
    return upgrade.response;
  });
  return {
    frames,
    get binaryFrames() {
      return binaryFrames;
    },
    port: listening.promise,
    send: (frame: unknown) => socket!.send(JSON.stringify(frame)),
    async close() {
      controller.abort();
      await server.finished;
    },
  };
}

function dispatch(id: string, repo: string, test: string) {
  return {
    event: "queue:new",
    attempt: 1,
    lease: `lease-of-${id}-1-0123456789`,
    job: {
      job_id: id,
      repo: { url: repo, vcs: "git" },
      ref: { branch: "main" },
      job_type: "TEST",
      trigger: {
        type: "manual",
        timestamp: new Date().toISOString(),
        source: { type: "API", app: "test" },
      },
      plugins: ["custom"],
      config: { custom: { test } },
    },
  };
}

for (const binary of [true, false]) {
  Deno.test({
    name: binary
      ? "a worker sends output in binary frames to a queen that announces them"
      : "a worker sends output as JSON to a queen that does not announce binary frames",
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const repo = await makeRepo({ "README.md": "frames\n" });
      const queen = scriptedQueen(binary);
      const worker = new Proc([
        "run",
        ...WORKER_PERMISSIONS,
        ENTRY,
        "worker",
        "--connect",
        `http://127.0.0.1:${await queen.port}`,
        "--token",
        "anything-at-all-0123",
        "--name",
        "framer",
        "--workdir",
        await Deno.makeTempDir({ prefix: "strider-framer-" }),
      ]);
      try {
        await waitUntil(() => queen.frames.some((f) => f.event === "drone:info"), 30_000);
        const info = queen.frames.find((f) => f.event === "drone:info");
        equal(info?.event === "drone:info" && info.binary_output, OUTPUT_FRAME_VERSION);
        queen.send(dispatch("framed", repo.path, "printf 'one €\\n'; printf 'two 😀\\n' >&2"));
        await waitUntil(() => queen.frames.some((f) => f.event === "job:done"), 60_000, "done");
        const output = queen.frames.filter((f) =>
          f.event === "job:cmd:stdout" || f.event === "job:cmd:stderr"
        );
        const text = output.map((f) => "text" in f ? f.text : "").join("");
        ok(text.includes("one €\n") && text.includes("two 😀\n"), text);
        const all = queen.frames.filter((f) => "seq" in f);
        deepEqual(all.map((f) => "seq" in f && f.seq), all.map((_, i) => i + 1));
        if (binary) equal(queen.binaryFrames, output.length);
        else equal(queen.binaryFrames, 0);
      } finally {
        await worker.stop();
        await queen.close();
      }
    },
  });
}

/** A worker written by hand against the real queen, speaking binary output or not. */
async function handWorker(queen: TestQueen, name: string, binary: boolean) {
  const url = new URL("/ws/worker", queen.url);
  url.protocol = "ws:";
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${WORKER_TOKEN}` } });
  const frames: QueenFrame[] = [];
  let closed: CloseEvent | undefined;
  socket.onmessage = (m) => {
    const decoded = decodeQueenFrame(m.data);
    if (decoded.ok) frames.push(decoded.value);
  };
  socket.onclose = (e) => closed = e;
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  await waitUntil(() => frames.some((f) => f.event === "drone:query-info"), 10_000);
  socket.send(JSON.stringify({
    event: "drone:info",
    name,
    version: "hand",
    protocol: PROTOCOL_VERSION,
    speed: 1,
    capacity: 1,
    plugins: ["env", "custom"],
    labels: [name],
    running: [],
    ...(binary ? { binary_output: OUTPUT_FRAME_VERSION } : {}),
  }));
  return {
    socket,
    frames,
    get closed() {
      return closed;
    },
    errors: () =>
      frames.filter((f) => f.event === "error").map((f) => "message" in f ? f.message : ""),
    json: (frame: unknown) => socket.send(JSON.stringify(frame)),
  };
}

Deno.test({
  name:
    "a protocol-2 worker runs a job with JSON output; a hostile one's binary frames are refused",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const queen = await startQueen();
    const honest = await handWorker(queen, "honest", false);
    const rogue = await handWorker(queen, "rogue", true);
    try {
      deepEqual(honest.frames[0], { event: "drone:query-info", binary_output: 1 });
      const id = await submitJob(queen, {
        ...customJob("/tmp/nowhere", { test: "true" }),
        labels: ["honest"],
      });
      await waitUntil(() => honest.frames.some((f) => f.event === "queue:new"), 10_000);
      let seq = 0;
      const send = (frame: Record<string, unknown>) =>
        honest.json({ id, attempt: 1, seq: ++seq, ...frame });
      send({ event: "job:started", timestamp: Date.now() });
      send({ event: "job:cmd:start", num: 0, command: "x", screencmd: "x", phase: "test" });
      send({ event: "job:cmd:stdout", num: 0, text: "json output €\n" });

      // The rogue writes to the honest worker's job, in binary, under every disguise.
      const forged = (attempt: number, s: number) =>
        encodeOutputFrame({ event: "job:cmd:stdout", id, attempt, seq: s, num: 0, text: "x\n" });
      rogue.socket.send(forged(1, seq + 1));
      rogue.socket.send(forged(2, 1));
      rogue.socket.send(new Uint8Array([1, 3, 0, 1]));
      rogue.socket.send(new Uint8Array([7, ...forged(1, seq + 1).subarray(1)]));
      // And a binary frame from the worker that never announced binary output.
      honest.socket.send(forged(1, seq + 1));
      await waitUntil(() => rogue.errors().length >= 4 && honest.errors().length >= 1, 10_000);
      const errors = rogue.errors();
      match(errors[0], /does not hold that attempt/);
      match(errors[1], /does not hold that attempt/);
      match(errors[2], /shorter than its 17-byte header/);
      match(errors[3], /layout version 7/);
      match(honest.errors()[0], /announce binary_output/);

      // An oversize binary frame closes the rogue's socket, unparsed.
      rogue.socket.send(new Uint8Array(MAX_FRAME_BYTES + 1));
      await waitUntil(() => rogue.closed !== undefined, 10_000, "the rogue's socket to close");
      equal(rogue.closed!.code, 1009);

      // The queen is up, and the honest job ends with its own output only.
      send({ event: "job:cmd:done", num: 0, exitCode: 0 });
      send({ event: "job:tested", code: 0, timestamp: Date.now() });
      send({ event: "job:done", result: "passed", timestamp: Date.now() });
      const job = await waitForJob(queen, id);
      equal(job.result, "passed");
      equal((await getJob(queen, id)).phases.test.commands[0].output, "json output €\n");
      const log = await (await api(queen, `/api/jobs/${id}/log`)).text();
      ok(log.endsWith("$ x\njson output €\n"), log);
      equal((await api(queen, "/healthz")).status, 200);
    } finally {
      honest.socket.close();
      rogue.socket.close();
      await queen.proc.stop();
    }
  },
});
