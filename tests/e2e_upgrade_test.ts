/**
 * Rolling upgrades: the queen is upgraded first, so it meets workers of the previous release.
 * The previous release's bundle, built here from its git tag (or its commit when the tag is not
 * in this clone), runs real jobs for the current queen beside a current worker; a worker
 * speaking a protocol the queen does not accept is refused with a message naming both versions.
 */
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import type { QueenFrame } from "../protocol/mod.ts";
import { PROTOCOL_VERSION, VERSION } from "../protocol/mod.ts";
import {
  api,
  customJob,
  droneNames,
  jobLog,
  ROOT,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
  waitUntil,
  WORKER_TOKEN,
} from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";
import { runProgram } from "./helpers/release.ts";

/** The release before this one. Raise it to this release's tag when the next one is cut. */
const PREVIOUS = { tag: "v0.1.0", commit: "801974d90eaa9a22946fb678ae49edf0c50730a6" };

/** The previous release's commit: its tag when this clone has it, else its commit id. */
async function previousCommit(): Promise<string> {
  for (const ref of [PREVIOUS.tag, PREVIOUS.commit]) {
    const found = await runProgram("git", ["rev-parse", "--verify", "-q", `${ref}^{commit}`], {
      cwd: ROOT,
    });
    if (found.code === 0) return found.stdout.trim();
  }
  throw new Error(
    `the previous release (tag ${PREVIOUS.tag}, commit ${PREVIOUS.commit}) is not in this ` +
      "clone's history: fetch it (git fetch --tags, or git fetch --unshallow in a shallow clone)",
  );
}

/** dist/strider.js of the previous release: its tree from git, bundled by its own script. */
async function previousBundle(): Promise<string> {
  const commit = await previousCommit();
  const tree = await Deno.makeTempDir({ prefix: "strider-previous-" });
  const unpack = await runProgram("sh", [
    "-c",
    `git -C '${ROOT}' archive --format=tar '${commit}' | tar -x -C '${tree}'`,
  ]);
  equal(unpack.code, 0, unpack.stderr);
  const output = join(tree, "dist", "strider.js");
  const bundle = await runProgram(Deno.execPath(), [
    "run",
    "-A",
    join(tree, "scripts", "bundle.ts"),
    "--output",
    output,
  ], { cwd: tree });
  equal(bundle.code, 0, bundle.stdout + bundle.stderr);
  return output;
}

Deno.test({
  name: "workers of the previous release run jobs for the current queen beside current workers",
  sanitizeResources: false,
  async fn() {
    const previous = await previousBundle();
    const version = await runProgram(Deno.execPath(), ["run", "-A", previous, "--version"]);
    const previousVersion = version.stdout.match(/^strider (\S+)/)?.[1];
    ok(previousVersion && previousVersion !== VERSION, `previous release says: ${version.stdout}`);

    const repo = await makeRepo({ "README": "upgrade\n" });
    const queen = await startQueen();
    const old = await startWorker(queen, {
      name: "previous",
      entry: previous,
      args: ["--labels", "old"],
    });
    const current = await startWorker(queen, { name: "current", args: ["--labels", "new"] });
    try {
      const drones = (await (await api(queen, "/api/drones")).json()).drones as {
        name: string;
        version: string;
      }[];
      equal(drones.find((d) => d.name === "previous")?.version, previousVersion);
      equal(drones.find((d) => d.name === "current")?.version, VERSION);

      for (const [label, drone] of [["old", "previous"], ["new", "current"]]) {
        const id = await submitJob(
          queen,
          customJob(repo.path, { test: `cat README; echo ran on ${label}` }, { labels: [label] }),
        );
        const job = await waitForJob(queen, id, 90_000);
        equal(job.result, "passed", await jobLog(queen, id));
        equal(job.drone, drone);
        match(await jobLog(queen, id), new RegExp(`upgrade\\nran on ${label}`));
      }
    } finally {
      await old.stop();
      await current.stop();
      await queen.proc.stop();
      await Deno.remove(join(previous, "..", ".."), { recursive: true });
    }
  },
});

Deno.test("a worker of a newer protocol is refused with both versions and what to upgrade", async () => {
  const queen = await startQueen();
  try {
    const socket = new WebSocket(queen.url.replace(/^http/, "ws") + "/ws/worker", {
      headers: { authorization: `Bearer ${WORKER_TOKEN}` },
    });
    const received: QueenFrame[] = [];
    socket.onmessage = (m) => received.push(JSON.parse(m.data));
    const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("the worker socket did not open"));
    });
    socket.send(JSON.stringify({
      event: "drone:info",
      name: "from-the-future",
      version: "9.0.0",
      protocol: PROTOCOL_VERSION + 1,
      speed: 1,
      capacity: 1,
      plugins: [],
      labels: [],
      running: [],
    }));
    const close = await closed;
    equal(close.code, 4002);
    const error = received.find((frame) => frame.event === "error");
    ok(error && error.event === "error", `no error frame in ${JSON.stringify(received)}`);
    match(
      error.message,
      new RegExp(`strider 9\\.0\\.0\\) speaks protocol ${PROTOCOL_VERSION + 1}`),
    );
    match(error.message, new RegExp(`\\(strider ${VERSION.replaceAll(".", "\\.")}\\) accepts`));
    match(error.message, /upgrade the queen to strider 9\.0\.0 or newer first/);
    ok(!(await droneNames(queen)).includes("from-the-future"));
    await waitUntil(() =>
      /refused drone from-the-future/.test(queen.proc.stderr + queen.proc.stdout)
    );
  } finally {
    await queen.proc.stop();
  }
});
