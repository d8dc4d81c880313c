/**
 * Every event of the seed and DESIGN.md, as each side decodes it: accepted in a valid form, and
 * refused in invalid forms with a message that names the bad field.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  decodeBrowserFrame,
  decodeQueenFrame,
  decodeWorkerFrame,
  MAX_FRAME_BYTES,
  QueenToBrowserSchema,
  validate,
} from "../protocol/mod.ts";
import type { Decoded, DispatchedJob, JobView } from "../protocol/mod.ts";

type Frame = Record<string, unknown>;

/** An invalid variant of a valid frame and the pattern its error message must match. */
interface Invalid {
  why: string;
  frame: Frame;
  error: RegExp;
}

interface Case {
  event: string;
  valid: Frame;
  invalid: Invalid[];
}

/** Decodes a queen → browser frame the way a browser would: JSON text, then the schema. */
function decodeQueenToBrowserFrame(raw: string) {
  return validate(QueenToBrowserSchema, JSON.parse(raw));
}

const T = 1_700_000_000_000;
const job = { id: "job-1", attempt: 1, seq: 1 };

/** Copies `frame` without `key`. */
function without(frame: Frame, key: string): Frame {
  const { [key]: _, ...rest } = frame;
  return rest;
}

/** The invalid forms every `job:*` event shares: its id, attempt and seq. */
function jobEventInvalids(valid: Frame): Invalid[] {
  return [
    { why: "without an id", frame: without(valid, "id"), error: /at id/ },
    { why: "with a job id that is not a name", frame: { ...valid, id: "../x" }, error: /at id/ },
    { why: "with a negative seq", frame: { ...valid, seq: -1 }, error: /at seq/ },
    { why: "with a seq of zero", frame: { ...valid, seq: 0 }, error: /at seq/ },
    { why: "with a fractional seq", frame: { ...valid, seq: 1.5 }, error: /at seq/ },
    { why: "with a string attempt", frame: { ...valid, attempt: "1" }, error: /at attempt/ },
    { why: "without an attempt", frame: without(valid, "attempt"), error: /at attempt/ },
  ];
}

/** A `job:*` case: the shared invalid forms plus the event's own. */
function jobEvent(event: string, fields: Frame, own: Invalid[]): Case {
  const valid = { event, ...job, ...fields };
  return { event, valid, invalid: [...jobEventInvalids(valid), ...own] };
}

const stdout = { event: "job:cmd:stdout", ...job, num: 0, text: "ok\n" };

const LEASE = "lease-token-0123456789";

const droneInfo = {
  event: "drone:info",
  name: "drone-a",
  version: "0.1.0",
  protocol: 2,
  speed: 2.5,
  capacity: 4,
  plugins: ["env", "custom", "node"],
  labels: ["linux"],
  running: [{ id: "job-1", attempt: 2, seq: 17, lease: "lease-token-0123456789" }],
};

const workerCases: Case[] = [
  jobEvent("job:queued", { timestamp: T }, [
    { why: "without a timestamp", frame: { event: "job:queued", ...job }, error: /at timestamp/ },
    {
      why: "with an ISO timestamp",
      frame: { event: "job:queued", ...job, timestamp: "2024-01-01T00:00:00Z" },
      error: /at timestamp/,
    },
  ]),
  jobEvent("job:started", { timestamp: T }, [
    {
      why: "with a negative timestamp",
      frame: { event: "job:started", ...job, timestamp: -5 },
      error: /at timestamp/,
    },
  ]),
  jobEvent("job:cmd:start", {
    num: 0,
    command: "npm test",
    screencmd: "npm test",
    phase: "test",
    plugin: "custom",
    timestamp: T,
  }, [
    {
      why: "with an unknown phase",
      frame: {
        event: "job:cmd:start",
        ...job,
        num: 0,
        command: "x",
        screencmd: "x",
        phase: "build",
      },
      error: /at phase/,
    },
    {
      why: "without a screencmd",
      frame: { event: "job:cmd:start", ...job, num: 0, command: "x", phase: "test" },
      error: /at screencmd/,
    },
    {
      why: "with a negative num",
      frame: {
        event: "job:cmd:start",
        ...job,
        num: -1,
        command: "x",
        screencmd: "x",
        phase: "test",
      },
      error: /at num/,
    },
  ]),
  jobEvent("job:cmd:done", { num: 0, exitCode: 1, timestamp: T }, [
    {
      why: "with an exit code above 255",
      frame: { event: "job:cmd:done", ...job, num: 0, exitCode: 256 },
      error: /at exitCode/,
    },
    {
      why: "without an exit code",
      frame: { event: "job:cmd:done", ...job, num: 0 },
      error: /at exitCode/,
    },
  ]),
  jobEvent("job:cmd:stdout", { num: 0, text: "ok\n" }, [
    { why: "with a numeric text", frame: { ...stdout, text: 42 }, error: /at text/ },
    { why: "without a num", frame: without(stdout, "num"), error: /at num/ },
  ]),
  jobEvent("job:cmd:stderr", { num: 3, text: "warning\n" }, [
    {
      why: "with a null text",
      frame: { ...stdout, event: "job:cmd:stderr", text: null },
      error: /at text/,
    },
    {
      why: "with a string num",
      frame: { ...stdout, event: "job:cmd:stderr", num: "3" },
      error: /at num/,
    },
  ]),
  jobEvent("job:plugin", { plugin: "custom", data: { step: "install", count: 2 } }, [
    { why: "without a plugin", frame: { event: "job:plugin", ...job }, error: /at plugin/ },
    {
      why: "with a numeric plugin",
      frame: { event: "job:plugin", ...job, plugin: 7 },
      error: /at plugin/,
    },
  ]),
  jobEvent("job:stdout", { text: "fetching\n" }, [
    { why: "without text", frame: { event: "job:stdout", ...job }, error: /at text/ },
    {
      why: "with a text list",
      frame: { event: "job:stdout", ...job, text: ["a"] },
      error: /at text/,
    },
  ]),
  jobEvent("job:stderr", { text: "oops\n" }, [
    { why: "without text", frame: { event: "job:stderr", ...job }, error: /at text/ },
    {
      why: "with a boolean text",
      frame: { event: "job:stderr", ...job, text: true },
      error: /at text/,
    },
  ]),
  jobEvent("job:tested", { code: 0, timestamp: T }, [
    {
      why: "without a code",
      frame: { event: "job:tested", ...job, timestamp: T },
      error: /at code/,
    },
    {
      why: "with a code below -1",
      frame: { event: "job:tested", ...job, code: -2, timestamp: T },
      error: /at code/,
    },
  ]),
  jobEvent("job:deployed", { code: 2, timestamp: T }, [
    {
      why: "with a string code",
      frame: { event: "job:deployed", ...job, code: "0", timestamp: T },
      error: /at code/,
    },
    {
      why: "without a timestamp",
      frame: { event: "job:deployed", ...job, code: 0 },
      error: /at timestamp/,
    },
  ]),
  jobEvent("job:done", { timestamp: T, result: "failed", error: "tests failed" }, [
    {
      why: "with the queen-only result lost",
      frame: { event: "job:done", ...job, timestamp: T, result: "lost" },
      error: /at result/,
    },
    {
      why: "without a result",
      frame: { event: "job:done", ...job, timestamp: T },
      error: /at result/,
    },
  ]),
  {
    event: "drone:info",
    valid: droneInfo,
    invalid: [
      { why: "with zero capacity", frame: { ...droneInfo, capacity: 0 }, error: /at capacity/ },
      { why: "with a negative speed", frame: { ...droneInfo, speed: -1 }, error: /at speed/ },
      { why: "without a name", frame: without(droneInfo, "name"), error: /at name/ },
      {
        why: "with a plugin name that is not a name",
        frame: { ...droneInfo, plugins: ["no spaces"] },
        error: /at plugins\[0\]/,
      },
      {
        why: "with a running attempt of negative seq",
        frame: { ...droneInfo, running: [{ id: "job-1", attempt: 1, seq: -1 }] },
        error: /at running\[0\]\.seq/,
      },
    ],
  },
  {
    event: "queue:taken",
    valid: { event: "queue:taken", id: "job-1", attempt: 1, taken: true },
    invalid: [
      {
        why: "without the answer",
        frame: { event: "queue:taken", id: "job-1", attempt: 1 },
        error: /at taken/,
      },
      {
        why: "with a string answer",
        frame: { event: "queue:taken", id: "job-1", attempt: 1, taken: "yes" },
        error: /at taken/,
      },
    ],
  },
  {
    event: "pong",
    valid: { event: "pong", t: T },
    invalid: [
      { why: "without t", frame: { event: "pong" }, error: /at t\b/ },
      { why: "with a string t", frame: { event: "pong", t: "now" }, error: /at t\b/ },
    ],
  },
  {
    event: "error",
    valid: { event: "error", message: "frame is not JSON" },
    invalid: [
      { why: "without a message", frame: { event: "error" }, error: /at message/ },
      {
        why: "with an object message",
        frame: { event: "error", message: {} },
        error: /at message/,
      },
    ],
  },
];

const dispatchedJob: DispatchedJob = {
  job_id: "job-1",
  repo: { url: "https://example.com/owner/repo.git", vcs: "git" },
  ref: { branch: "main" },
  job_type: "TEST",
  trigger: {
    type: "manual",
    timestamp: "2024-05-01T12:00:00Z",
    source: { type: "API", app: "cli" },
  },
  plugins: ["custom"],
  config: { custom: { test: "npm test" } },
};

const queenCases: Case[] = [
  {
    event: "drone:query-info",
    valid: { event: "drone:query-info" },
    invalid: [
      { why: "misspelt", frame: { event: "drone:query_info" }, error: /at event/ },
      { why: "with a numeric event", frame: { event: 1 }, error: /at event/ },
    ],
  },
  {
    event: "queue:new",
    valid: { event: "queue:new", attempt: 1, lease: LEASE, job: dispatchedJob },
    invalid: [
      {
        why: "with a job without a job_id",
        frame: {
          event: "queue:new",
          attempt: 1,
          lease: LEASE,
          job: without(dispatchedJob, "job_id"),
        },
        error: /at job\.job_id/,
      },
      {
        why: "with a job without a trigger",
        frame: {
          event: "queue:new",
          attempt: 1,
          lease: LEASE,
          job: without(dispatchedJob, "trigger"),
        },
        error: /at job\.trigger/,
      },
      {
        why: "without an attempt",
        frame: { event: "queue:new", lease: LEASE, job: dispatchedJob },
        error: /at attempt/,
      },
      {
        why: "without a lease token",
        frame: { event: "queue:new", attempt: 1, job: dispatchedJob },
        error: /at lease/,
      },
      {
        why: "with a branch that reads as an option",
        frame: {
          event: "queue:new",
          attempt: 1,
          lease: LEASE,
          job: { ...dispatchedJob, ref: { branch: "--upload-pack=evil" } },
        },
        error: /at job\.ref\.branch/,
      },
    ],
  },
  {
    event: "queue:take",
    valid: { event: "queue:take", id: "job-1", attempt: 2 },
    invalid: [
      {
        why: "without an attempt",
        frame: { event: "queue:take", id: "job-1" },
        error: /at attempt/,
      },
      { why: "without an id", frame: { event: "queue:take", attempt: 1 }, error: /at id/ },
    ],
  },
  {
    event: "job:cancel",
    valid: { event: "job:cancel", id: "job-1", attempt: 2, reason: "timeout" },
    invalid: [
      {
        why: "with an unknown reason",
        frame: { event: "job:cancel", id: "job-1", attempt: 2, reason: "bored" },
        error: /at reason/,
      },
      {
        why: "without an id",
        frame: { event: "job:cancel", attempt: 2, reason: "cancelled" },
        error: /at id/,
      },
    ],
  },
  {
    event: "job:ack",
    valid: { event: "job:ack", id: "job-1", attempt: 1, seq: 42 },
    invalid: [
      {
        why: "with a negative seq",
        frame: { event: "job:ack", id: "job-1", attempt: 1, seq: -3 },
        error: /at seq/,
      },
      {
        why: "with an attempt of zero",
        frame: { event: "job:ack", id: "job-1", attempt: 0, seq: 1 },
        error: /at attempt/,
      },
    ],
  },
  {
    event: "ping",
    valid: { event: "ping", t: T },
    invalid: [
      { why: "without t", frame: { event: "ping" }, error: /at t\b/ },
      { why: "with a fractional t", frame: { event: "ping", t: 1.5 }, error: /at t\b/ },
    ],
  },
  {
    event: "drone:drain",
    valid: { event: "drone:drain" },
    invalid: [
      { why: "misspelt", frame: { event: "drone:drained" }, error: /at event/ },
      { why: "without an event", frame: {}, error: /at event/ },
    ],
  },
  {
    event: "error",
    valid: { event: "error", message: "unknown job" },
    invalid: [
      { why: "without a message", frame: { event: "error" }, error: /at message/ },
      { why: "with a numeric message", frame: { event: "error", message: 5 }, error: /at message/ },
    ],
  },
];

const emptyPhase = { exitCode: null, finished: false, commands: [] };
const jobView: JobView = {
  id: "job-1",
  status: "started",
  result: null,
  error: null,
  waiting: null,
  spec: {
    repo: { url: "https://example.com/owner/repo.git", vcs: "git" },
    ref: { branch: "main" },
    job_type: "TEST",
  },
  drone: "drone-a",
  attempt: 1,
  attempts: [{
    attempt: 1,
    drone: "drone-a",
    dispatchedAt: "2024-05-01T12:00:00.000Z",
    startedAt: "2024-05-01T12:00:01.000Z",
    finishedAt: null,
    result: null,
  }],
  createdAt: "2024-05-01T12:00:00.000Z",
  startedAt: "2024-05-01T12:00:01.000Z",
  finishedAt: null,
  tested: null,
  deployed: null,
  phases: {
    environment: emptyPhase,
    prepare: {
      exitCode: 0,
      finished: true,
      commands: [{
        num: 0,
        command: "git clone",
        plugin: null,
        exitCode: 0,
        startedAt: "2024-05-01T12:00:01.000Z",
        finishedAt: "2024-05-01T12:00:02.000Z",
        output: "Cloning\n",
      }],
    },
    test: emptyPhase,
    deploy: emptyPhase,
    cleanup: emptyPhase,
  },
  output: "",
  retryOf: null,
};

const recorded = { n: 1, at: T, data: { event: "job:stdout", ...job, text: "hi\n" } };

const queenToBrowserCases: Case[] = [
  {
    event: "browser",
    valid: { event: "browser", type: "job:stdout", args: [recorded] },
    invalid: [
      { why: "without a type", frame: { event: "browser", args: [] }, error: /at type/ },
      {
        why: "with args that are not a list",
        frame: { event: "browser", type: "job:stdout", args: recorded },
        error: /at args/,
      },
      {
        why: "with an event number of zero",
        frame: { event: "browser", type: "job:stdout", args: [{ ...recorded, n: 0 }] },
        error: /at args\[0\]\.n/,
      },
    ],
  },
  {
    event: "job:info",
    valid: { event: "job:info", id: "job-1", job: jobView, n: 12 },
    invalid: [
      {
        why: "with a negative n",
        frame: { event: "job:info", id: "job-1", job: jobView, n: -1 },
        error: /at n\b/,
      },
      {
        why: "with a job of unknown status",
        frame: { event: "job:info", id: "job-1", job: { ...jobView, status: "running" }, n: 0 },
        error: /at job\.status/,
      },
      { why: "without a job", frame: { event: "job:info", id: "job-1", n: 0 }, error: /at job\b/ },
    ],
  },
];

const browserToQueenCases: Case[] = [
  {
    event: "job:query-info",
    valid: { event: "job:query-info", id: "job-1" },
    invalid: [
      { why: "without an id", frame: { event: "job:query-info" }, error: /at id/ },
      { why: "with a numeric id", frame: { event: "job:query-info", id: 7 }, error: /at id/ },
      {
        why: "with an id that is a path",
        frame: { event: "job:query-info", id: "../../etc" },
        error: /at id/,
      },
    ],
  },
];

const directions: [string, (raw: string) => Decoded<unknown>, Case[]][] = [
  ["a worker → queen", decodeWorkerFrame, workerCases],
  ["a queen → worker", decodeQueenFrame, queenCases],
  ["a queen → browser", decodeQueenToBrowserFrame, queenToBrowserCases],
  ["a browser → queen", decodeBrowserFrame, browserToQueenCases],
];

for (const [direction, decode, cases] of directions) {
  for (const { event, valid, invalid } of cases) {
    Deno.test(`${direction} ${event} frame in a valid form decodes to the same typed value`, () => {
      const decoded = decode(JSON.stringify(valid));
      ok(decoded.ok, decoded.ok ? "" : decoded.error);
      deepEqual(decoded.value, valid);
    });

    ok(invalid.length >= 2, `${event} needs at least two invalid forms`);
    for (const { why, frame, error } of invalid) {
      Deno.test(`${direction} ${event} frame ${why} is refused naming the field`, () => {
        const decoded = decode(JSON.stringify(frame));
        equal(decoded.ok, false, `accepted ${JSON.stringify(frame)}`);
        if (!decoded.ok) match(decoded.error, error);
      });
    }
  }

  Deno.test(`${direction} frame with an unknown event name is refused naming the event`, () => {
    const decoded = decode(JSON.stringify({ event: "job:explode", id: "job-1" }));
    equal(decoded.ok, false);
    if (!decoded.ok) match(decoded.error, /at event/);
  });
}

const events = (cases: Case[]) => cases.map((c) => c.event).toSorted();

Deno.test("the tables cover every event of the seed and DESIGN.md", () => {
  deepEqual(
    events(workerCases),
    [
      "drone:info",
      "error",
      "job:cmd:done",
      "job:cmd:start",
      "job:cmd:stderr",
      "job:cmd:stdout",
      "job:deployed",
      "job:done",
      "job:plugin",
      "job:queued",
      "job:started",
      "job:stderr",
      "job:stdout",
      "job:tested",
      "pong",
      "queue:taken",
    ],
  );
  deepEqual(events(queenCases), [
    "drone:drain",
    "drone:query-info",
    "error",
    "job:ack",
    "job:cancel",
    "ping",
    "queue:new",
    "queue:take",
  ]);
  deepEqual(events(queenToBrowserCases), ["browser", "job:info"]);
  deepEqual(events(browserToQueenCases), ["job:query-info"]);
});

Deno.test("a worker frame fills in the job defaults of queue:new", () => {
  const { vcs: _vcs, ...repo } = dispatchedJob.repo;
  const { job_type: _type, ...rest } = dispatchedJob;
  const decoded = decodeQueenFrame(
    JSON.stringify({ event: "queue:new", attempt: 1, lease: LEASE, job: { ...rest, repo } }),
  );
  ok(decoded.ok, decoded.ok ? "" : decoded.error);
  ok(decoded.value.event === "queue:new");
  equal(decoded.value.job.repo.vcs, "git");
  equal(decoded.value.job.job_type, "TEST");
});

const decoders = [decodeWorkerFrame, decodeQueenFrame, decodeBrowserFrame];

Deno.test("a frame that is not JSON is refused with a readable error", () => {
  for (const decode of decoders) {
    const decoded = decode('{"event": "ping", t: ');
    equal(decoded.ok, false);
    if (!decoded.ok) match(decoded.error, /^frame is not JSON: /);
  }
});

Deno.test("a JSON value that is not an object is refused", () => {
  for (const raw of ["null", "42", '"ping"', '["ping"]']) {
    const decoded = decodeWorkerFrame(raw);
    equal(decoded.ok, false, `accepted ${raw}`);
  }
});

Deno.test("a binary frame is refused because frames must be JSON text", () => {
  const binaries: unknown[] = [
    new TextEncoder().encode(JSON.stringify({ event: "ping", t: T })).buffer,
    new Uint8Array([123, 125]),
    new Blob(["{}"]),
    undefined,
  ];
  for (const decode of decoders) {
    for (const raw of binaries) {
      const decoded = decode(raw as string);
      equal(decoded.ok, false);
      if (!decoded.ok) equal(decoded.error, "frames must be JSON text");
    }
  }
});

Deno.test("a frame larger than the limit is refused unparsed with its size", () => {
  const raw = JSON.stringify({ event: "job:stdout", ...job, text: "x".repeat(MAX_FRAME_BYTES) });
  for (const decode of decoders) {
    const decoded = decode(raw);
    equal(decoded.ok, false);
    if (!decoded.ok) {
      match(decoded.error, new RegExp(`${raw.length} bytes exceeds ${MAX_FRAME_BYTES}`));
    }
  }
});

Deno.test("a frame over the limit in UTF-8 bytes but not in characters is refused", () => {
  // 800 000 euro signs: within the output limit as text, 2.4 MB as UTF-8 on the wire.
  const text = "€".repeat(800_000);
  const raw = JSON.stringify({ event: "job:stdout", ...job, text });
  ok(raw.length < MAX_FRAME_BYTES);
  const decoded = decodeWorkerFrame(raw);
  equal(decoded.ok, false);
  const bytes = new TextEncoder().encode(raw).byteLength;
  if (!decoded.ok) equal(decoded.error, `frame of ${bytes} bytes exceeds ${MAX_FRAME_BYTES}`);
});

Deno.test("a frame just under the limit is accepted", () => {
  const overhead = JSON.stringify({ event: "job:stdout", ...job, text: "" }).length;
  const text = "x".repeat(Math.min(1024 * 1024, MAX_FRAME_BYTES - overhead));
  const decoded = decodeWorkerFrame(JSON.stringify({ event: "job:stdout", ...job, text }));
  ok(decoded.ok, decoded.ok ? "" : decoded.error);
});

Deno.test("a worker frame with extra fields decodes without them", () => {
  const decoded = decodeWorkerFrame(
    JSON.stringify({ event: "pong", t: T, injected: "<script>" }),
  );
  ok(decoded.ok, decoded.ok ? "" : decoded.error);
  deepEqual(decoded.value, { event: "pong", t: T });
});
