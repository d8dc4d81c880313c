/**
 * Binary output frames (protocol/output_frame.ts): every output event survives the round trip
 * exactly; truncated, oversize, mutated and random frames are refused with a message, never a
 * throw; and the queen refuses them (with an `error` frame) from a drone that did not announce
 * them, for a job or attempt it does not hold, or malformed, while an honest job keeps its output.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import fc from "fast-check";
import type { OutputEvent, QueenFrame } from "../protocol/mod.ts";
import {
  decodeOutputFrame,
  encodeOutputFrame,
  JobSpecSchema,
  LIMITS,
  MAX_FRAME_BYTES,
  OUTPUT_FRAME_VERSION,
  OUTPUT_HEADER_BYTES,
  PROTOCOL_VERSION,
} from "../protocol/mod.ts";
import { MemoryStore } from "../queen/memory_store.ts";
import { QueenCore } from "../queen/queen.ts";
import { Masker } from "../worker/masking.ts";
import { OutputBatcher } from "../worker/output_batcher.ts";

const jobId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const outputEvent: fc.Arbitrary<OutputEvent> = fc.oneof(
  fc.record({
    event: fc.constantFrom("job:stdout" as const, "job:stderr" as const),
    id: jobId,
    attempt: fc.integer({ min: 1, max: 1000 }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    text: fc.string({ unit: "grapheme", maxLength: 300 }),
  }),
  fc.record({
    event: fc.constantFrom("job:cmd:stdout" as const, "job:cmd:stderr" as const),
    id: jobId,
    attempt: fc.integer({ min: 1, max: 1000 }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    num: fc.integer({ min: 0, max: 1_000_000 }),
    text: fc.string({ unit: "binary", maxLength: 300 }),
  }),
);

/** A frame built by hand, to write fields no honest encoder would. */
function handmade(fields: {
  version?: number;
  kind?: number;
  attempt?: number;
  num?: number;
  seqHigh?: number;
  seqLow?: number;
  idLength?: number;
  id?: string;
  text?: Uint8Array;
}): Uint8Array {
  const id = new TextEncoder().encode(fields.id ?? "job-1");
  const text = fields.text ?? new TextEncoder().encode("hello\n");
  const frame = new Uint8Array(OUTPUT_HEADER_BYTES + id.length + text.length);
  const view = new DataView(frame.buffer);
  frame[0] = fields.version ?? OUTPUT_FRAME_VERSION;
  frame[1] = fields.kind ?? 3;
  view.setUint16(2, fields.attempt ?? 1);
  view.setUint32(4, fields.num ?? 0);
  view.setUint32(8, fields.seqHigh ?? 0);
  view.setUint32(12, fields.seqLow ?? 1);
  frame[16] = fields.idLength ?? id.length;
  frame.set(id, OUTPUT_HEADER_BYTES);
  frame.set(text, OUTPUT_HEADER_BYTES + id.length);
  return frame;
}

function refused(frame: unknown, pattern: RegExp): void {
  const decoded = decodeOutputFrame(frame);
  ok(!decoded.ok, `accepted ${String(frame).slice(0, 80)}`);
  match(decoded.error, pattern);
}

Deno.test("every output event comes back from its binary frame as it was", () => {
  fc.assert(
    fc.property(outputEvent, (event) => {
      const decoded = decodeOutputFrame(encodeOutputFrame(event));
      ok(decoded.ok, decoded.ok ? "" : decoded.error);
      // Lone surrogates are not text any output decoded from bytes holds; they become U+FFFD.
      const text = new TextDecoder().decode(new TextEncoder().encode(event.text));
      deepEqual(decoded.value.event, { ...event, text });
      deepEqual(decoded.value.bytes, new TextEncoder().encode(event.text));
    }),
    { numRuns: 2000 },
  );
  // The ends of every range, and an ArrayBuffer as the socket delivers it.
  const event: OutputEvent = {
    event: "job:cmd:stderr",
    id: "a".repeat(64),
    attempt: 1000,
    seq: Number.MAX_SAFE_INTEGER,
    num: 1_000_000,
    text: "€😀\u0000\n",
  };
  const frame = encodeOutputFrame(event);
  const decoded = decodeOutputFrame(frame.buffer.slice(0));
  ok(decoded.ok);
  deepEqual(decoded.value.event, event);
  const empty = decodeOutputFrame(encodeOutputFrame({ ...event, text: "" }));
  ok(empty.ok);
  equal(empty.value.event.text, "");
});

Deno.test("a frame cut anywhere is refused or is a shorter text, never thrown", () => {
  const frame = encodeOutputFrame({
    event: "job:cmd:stdout",
    id: "job-7",
    attempt: 2,
    seq: 9,
    num: 3,
    text: "ab€😀cd",
  });
  for (let end = 0; end < frame.length; end++) {
    const decoded = decodeOutputFrame(frame.subarray(0, end));
    if (end < OUTPUT_HEADER_BYTES + 5) {
      ok(!decoded.ok, `a frame of ${end} bytes was accepted`);
      continue;
    }
    // Cut inside a character: refused as invalid UTF-8; between characters: a shorter text.
    if (decoded.ok) ok("ab€😀cd".startsWith(decoded.value.event.text));
    else match(decoded.error, /not valid UTF-8/);
  }
  refused(new Uint8Array(0), /shorter than its 17-byte header/);
  refused(frame.subarray(0, OUTPUT_HEADER_BYTES + 2), /job id of 5 bytes does not fit/);
});

Deno.test("frames out of range, of another version, or not bytes are refused with a reason", () => {
  refused(handmade({ version: 2 }), /layout version 2: this side reads version 1 only/);
  refused(handmade({ version: 0 }), /layout version 0/);
  refused(handmade({ kind: 0 }), /unknown event code 0/);
  refused(handmade({ kind: 5 }), /unknown event code 5/);
  refused(handmade({ attempt: 0 }), /attempt 0 is not 1 to 1000/);
  refused(handmade({ attempt: 1001 }), /attempt 1001/);
  refused(handmade({ kind: 1, num: 4 }), /num 4 is not 0 for job:stdout/);
  refused(handmade({ num: 1_000_001 }), /num 1000001 is not 0 to 1000000/);
  refused(handmade({ seqLow: 0 }), /seq is not 1/);
  refused(handmade({ seqHigh: 0x200000 }), /seq is not 1/);
  refused(handmade({ idLength: 0 }), /job id of 0 bytes/);
  refused(handmade({ idLength: 255 }), /job id of 255 bytes does not fit/);
  refused(handmade({ id: "../etc" }), /job id must be/);
  refused(handmade({ id: "a".repeat(65) }), /job id of 65 bytes/);
  refused(handmade({ text: new Uint8Array([0x61, 0xff, 0x62]) }), /not valid UTF-8/);
  refused(handmade({ text: new Uint8Array([0xe2, 0x82]) }), /not valid UTF-8/);
  refused(handmade({ text: new Uint8Array([0xed, 0xa0, 0x80]) }), /not valid UTF-8/);
  // Past the frame limit, counted in bytes, before anything is decoded.
  refused(handmade({ text: new Uint8Array(MAX_FRAME_BYTES) }), /exceeds 2097152/);
  // Within the frame limit, but more text than one output event may hold.
  refused(
    handmade({ text: new TextEncoder().encode("x".repeat(LIMITS.output + 1)) }),
    /text of 1048577 characters exceeds 1048576/,
  );
  refused("a text frame", /must be bytes/);
  refused(undefined, /must be bytes/);
  refused(new Blob(["x"]), /must be bytes/);
});

Deno.test("random and mutated bytes never make the decoder throw", () => {
  const valid = encodeOutputFrame({
    event: "job:stdout",
    id: "job-1",
    attempt: 1,
    seq: 1,
    text: "x€\n",
  });
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }).map((edits) => {
          const frame = valid.slice();
          for (const [at, byte] of edits) frame[at] = byte;
          return frame;
        }),
      ),
      (frame) => {
        const decoded = decodeOutputFrame(frame);
        if (decoded.ok) {
          // Whatever is accepted is a well-formed output event.
          ok(decoded.value.event.attempt >= 1 && decoded.value.event.seq >= 1);
          ok(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(decoded.value.event.id));
        } else ok(decoded.error.length > 0);
      },
    ),
    { numRuns: 5000 },
  );
});

class FakeSocket {
  readyState: number = WebSocket.OPEN;
  sent: QueenFrame[] = [];
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = WebSocket.CLOSED;
  }
}

function droneInfo(name: string, binary: boolean): string {
  return JSON.stringify({
    event: "drone:info",
    name,
    version: "test",
    protocol: PROTOCOL_VERSION,
    speed: 1,
    capacity: 1,
    plugins: ["env", "custom"],
    labels: [],
    running: [],
    ...(binary ? { binary_output: OUTPUT_FRAME_VERSION } : {}),
  });
}

/** The frame as the socket delivers it to the queen: an ArrayBuffer of its own. */
const wire = (event: OutputEvent) => encodeOutputFrame(event).slice().buffer;

Deno.test("the queen takes binary output only from the drone holding the attempt", async () => {
  const store = new MemoryStore();
  const core = new QueenCore(store, { leaseMs: 60_000, maxAttempts: 3, log: () => {} });
  try {
    const spec = JobSpecSchema.parse({ repo: { url: "/tmp/repo" }, ref: { branch: "main" } });
    const honestSocket = new FakeSocket();
    const honest = core.connect(honestSocket as unknown as WebSocket);
    // The queen announces the layout it reads.
    deepEqual(honestSocket.sent[0], { event: "drone:query-info", binary_output: 1 });
    core.receive(honest, droneInfo("honest", true));
    const { id } = await core.submit(spec);
    const dispatch = honestSocket.sent.find((f) => f.event === "queue:new");
    ok(dispatch);
    let seq = 0;
    const json = (frame: Record<string, unknown>) =>
      core.receive(honest, JSON.stringify({ id, attempt: 1, seq: ++seq, ...frame }));
    json({ event: "job:started", timestamp: Date.now() });
    json({ event: "job:cmd:start", num: 0, command: "cat", screencmd: "cat", phase: "test" });
    core.receive(
      honest,
      wire({ event: "job:cmd:stdout", id, attempt: 1, seq: ++seq, num: 0, text: "one €\n" }),
    );

    // A second drone, announcing binary output, writes to a job it does not hold.
    const rogueSocket = new FakeSocket();
    const rogue = core.connect(rogueSocket as unknown as WebSocket);
    const errorsOf = (socket: FakeSocket) =>
      socket.sent.filter((f) => f.event === "error").map((f) => "message" in f ? f.message : "");
    core.receive(
      rogue,
      wire({ event: "job:cmd:stdout", id, attempt: 1, seq: 4, num: 0, text: "early\n" }),
    );
    match(errorsOf(rogueSocket).pop()!, /send drone:info before job events/);
    core.receive(rogue, droneInfo("rogue", true));
    for (const attempt of [1, 2]) {
      core.receive(
        rogue,
        wire({ event: "job:cmd:stdout", id, attempt, seq: 4, num: 0, text: "forged\n" }),
      );
      match(errorsOf(rogueSocket).pop()!, /does not hold that attempt/);
    }
    // Malformed, of another version, oversize text: refused with what is wrong.
    core.receive(rogue, new Uint8Array([1, 3, 0]).buffer);
    match(errorsOf(rogueSocket).pop()!, /shorter than its 17-byte header/);
    core.receive(rogue, handmade({ version: 9, id }).buffer);
    match(errorsOf(rogueSocket).pop()!, /layout version 9/);
    // A drone that did not announce binary output may not send it, even for its own job.
    const oldSocket = new FakeSocket();
    const old = core.connect(oldSocket as unknown as WebSocket);
    core.receive(old, droneInfo("old", false));
    core.receive(
      old,
      wire({ event: "job:cmd:stdout", id, attempt: 1, seq: 4, num: 0, text: "old\n" }),
    );
    match(errorsOf(oldSocket).pop()!, /announce binary_output in drone:info/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const before = rogueSocket.sent.length;
        core.receive(rogue, bytes.slice().buffer);
        ok(rogueSocket.sent.slice(before).some((f) => f.event === "error"));
      }),
      { numRuns: 500 },
    );

    // The honest job goes on, seq unbroken, and its log holds its own output only.
    core.receive(
      honest,
      wire({ event: "job:cmd:stdout", id, attempt: 1, seq: ++seq, num: 0, text: "two 😀\n" }),
    );
    json({ event: "job:cmd:done", num: 0, exitCode: 0 });
    json({ event: "job:tested", code: 0, timestamp: Date.now() });
    json({ event: "job:done", result: "passed", timestamp: Date.now() });
    const view = (await core.job(id))!.view;
    equal(view.result, "passed");
    equal(view.phases.test.commands[0].output, "one €\ntwo 😀\n");
    const log = new TextDecoder().decode(await store.readLog(id, 0, 1 << 20));
    ok(log.endsWith("$ cat\none €\ntwo 😀\n"), log);
    deepEqual(errorsOf(honestSocket), []);
  } finally {
    core.close();
  }
});

Deno.test("the worker's batches never split a character, so frames carry whole UTF-8", () => {
  const sent: string[] = [];
  const batcher = new OutputBatcher(new Masker([]), (_stream, text) => sent.push(text));
  // 4-byte characters (two UTF-16 units each) placed so that a 64 Ki-unit cut falls inside one.
  const text = "a" + "😀".repeat(70_000);
  batcher.write("stdout", text);
  batcher.close();
  equal(sent.join(""), text);
  ok(sent.length > 1);
  for (const piece of sent) {
    ok(piece.length <= 64 * 1024);
    const bytes = new TextEncoder().encode(piece);
    equal(new TextDecoder("utf-8", { fatal: true }).decode(bytes), piece);
  }
});

Deno.test("a leading U+FEFF and a printed U+FFFD are output, kept as they are", () => {
  for (const text of ["\ufeffstarts with a BOM\n", "a \ufffd the job printed\n", "\ufeff"]) {
    const decoded = decodeOutputFrame(
      encodeOutputFrame({ event: "job:stdout", id: "j", attempt: 1, seq: 1, text }),
    );
    ok(decoded.ok);
    equal(decoded.value.event.text, text);
  }
});
