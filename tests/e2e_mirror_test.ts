/**
 * The worker's mirror cache over HTTP, end to end: a repeat job asks the server only which commit
 * its branch names, a job pinned to a commit the mirror holds asks only that too (its proof that it
 * may read the repository), a job the server turns away gets nothing of the mirror's, and
 * force-pushes, missing commits and concurrent jobs on one mirror still get exactly the commit
 * asked for.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  customJob,
  jobLog,
  startQueen,
  startWorker,
  submitJob,
  waitForJob,
} from "./helpers/cluster.ts";
import type { TestQueen } from "./helpers/cluster.ts";
import { commitFiles, git, makeRepo } from "./helpers/git_repo.ts";
import { startGitHttpServer } from "./helpers/git_http_server.ts";
import type { GitHttpRequest } from "./helpers/git_http_server.ts";

Deno.test("repeat jobs over HTTP reuse the mirror and still get exactly the commit asked for", async (t) => {
  const gitRoot = await Deno.makeTempDir({ prefix: "strider-mirror-root-" });
  const username = "ci";
  const password = `pw-${crypto.randomUUID()}`;
  const server = startGitHttpServer(gitRoot, { username, password });
  const work = await makeRepo({
    "version.txt": "one\n",
    "old-only.txt": "gone after the rewrite\n",
  });
  await git(gitRoot, "clone", "-q", "--bare", work.path, "app.git");
  await git(work.path, "remote", "add", "origin", `${gitRoot}/app.git`);
  const url = server.url("app.git");
  const queen = await startQueen();
  const worker = await startWorker(queen, { name: "mirror", args: ["--capacity", "2"] });

  /** Pushes `files` as a new commit on `branch` of the served repository; returns its id. */
  const push = async (files: Record<string, string>, branch = "main", force = false) => {
    const id = await commitFiles(work.path, files, `change ${JSON.stringify(files)}`);
    await git(work.path, "push", "-q", ...(force ? ["-f"] : []), "origin", `HEAD:${branch}`);
    return id;
  };
  /** Runs a job for `ref`; returns the commit it checked out, its file, and the server's log. */
  const runJob = async (queen: TestQueen, ref: Record<string, unknown>) => {
    const before = server.requests.length;
    const id = await submitJob(queen, {
      ...customJob(url, {
        test:
          'echo "HEAD=$(git rev-parse HEAD)"; echo "FILES=$(ls | tr "\\n" " ")"; cat version.txt',
      }),
      repo: { url, auth: { type: "https", username, password } },
      ref,
    });
    const job = await waitForJob(queen, id);
    const log = await jobLog(queen, id);
    equal(job.result, "passed", `${job.error}\n${log}`);
    return {
      head: /^HEAD=(\S+)$/m.exec(log)?.[1],
      files: /^FILES=(.*)$/m.exec(log)?.[1].trim(),
      log,
      requests: server.requests.slice(before),
    };
  };
  const summary = (requests: GitHttpRequest[]) => JSON.stringify(requests);

  try {
    await t.step("a repeat job asks the server once, for the branch's commit", async () => {
      const first = await runJob(queen, { branch: "main" });
      equal(first.head, work.commit);
      ok(first.requests.some((r) => r.method === "POST" && r.status === 200), "nothing fetched");
      const again = await runJob(queen, { branch: "main" });
      equal(again.head, work.commit);
      deepEqual(
        again.requests.map((r) => [r.method, r.path, r.user, r.status]),
        [["POST", "/app.git/git-upload-pack", username, 200]],
      );
    });

    let replaced = "";
    await t.step("after a force-push, a repeat job gets the new commit", async () => {
      await git(work.path, "checkout", "-q", "--orphan", "rewrite");
      await git(work.path, "rm", "-q", "-r", "-f", ".");
      replaced = await push({ "version.txt": "rewritten\n" }, "main", true);
      const job = await runJob(queen, { branch: "main" });
      equal(job.head, replaced);
      match(job.log, /^rewritten$/m);
      // Exactly the new tree: nothing left of the commit the mirror held before.
      equal(job.files, "version.txt");
    });

    await t.step("a job naming a commit the mirror has only proves it may read", async () => {
      // The first commit is on no branch any more, but a commit never changes: nothing is
      // fetched. The one request is the job's own proof that the server lets it read.
      const job = await runJob(queen, { branch: "main", id: work.commit });
      equal(job.head, work.commit);
      equal(job.files, "old-only.txt version.txt");
      match(job.log, /^one$/m);
      deepEqual(
        job.requests.map((r) => [r.method, r.path, r.user, r.status]),
        [["POST", "/app.git/git-upload-pack", username, 200]],
        summary(job.requests),
      );
    });

    await t.step("a job the server turns away gets nothing of the mirror's", async () => {
      // The mirror holds the first commit (just checked out) and main's tip. Jobs without the
      // password, or with a wrong one, ask for both; their cleanup phase still runs in the
      // workspace and shows what it holds, and their test phase would print the file.
      const denied = [
        { auth: undefined, ref: { branch: "main", id: work.commit } },
        {
          auth: { type: "https", username, password: "wrong" },
          ref: { branch: "main", id: work.commit },
        },
        { auth: undefined, ref: { branch: "main" } },
        { auth: { type: "https", username, password: "wrong" }, ref: { branch: "main" } },
        { auth: { type: "https", username: "", password: "" }, ref: { fetch: "refs/heads/main" } },
      ];
      for (const { auth, ref } of denied) {
        const what = JSON.stringify({ auth, ref });
        const before = server.requests.length;
        const id = await submitJob(queen, {
          ...customJob(url, {
            test: "echo LEAKED-TEST; cat version.txt",
            cleanup: 'echo "SEEN=$(find . -path ./home -prune -o -path ./tmp -prune -o -print | ' +
              'sort | tr "\\n" " ")"; cat src/version.txt src/old-only.txt 2>/dev/null; ' +
              "git -C src show HEAD:version.txt 2>/dev/null; true",
          }),
          repo: auth ? { url, auth } : { url },
          ref,
        });
        const job = await waitForJob(queen, id);
        const log = await jobLog(queen, id);
        equal(job.result, "errored", `${what}\n${log}`);
        match(job.error ?? "", /authentication failed/, what);
        match(log, /authentication failed/, what);
        // The workspace holds nothing of the repository: no checkout, no borrowed objects.
        // (Its own home and tmp are left out of the list.)
        equal(/^SEEN=(.*)$/m.exec(log)?.[1].trim(), ".", `${what}\n${log}`);
        ok(!/LEAKED-TEST|^one$|^newest$|gone after the rewrite|^rewritten$/m.test(log), log);
        // The server let none of them in.
        const asked = server.requests.slice(before);
        ok(asked.length > 0, `${what}: the server was never asked`);
        deepEqual(asked.filter((r) => r.status !== 401), [], summary(asked));
      }
      // The authorised repeat is still one request and no fetch.
      const again = await runJob(queen, { branch: "main", id: work.commit });
      equal(again.head, work.commit);
      equal(again.requests.length, 1, summary(again.requests));
    });

    await t.step("a job naming a commit the mirror lacks fetches it", async () => {
      const next = await push({ "version.txt": "next\n" });
      const job = await runJob(queen, { branch: "main", id: next });
      equal(job.head, next);
      match(job.log, /^next$/m);
      ok(job.requests.length > 0, "the new commit came from nowhere");
      // One only on another branch: fetched by its id.
      await git(work.path, "checkout", "-q", "-b", "side");
      const side = await push({ "version.txt": "side\n" }, "side");
      const pinned = await runJob(queen, { branch: "main", id: side });
      equal(pinned.head, side);
      match(pinned.log, /^side$/m);
      await git(work.path, "checkout", "-q", "rewrite");
    });

    await t.step("two jobs at once on one mirror both get the new commit", async () => {
      const newest = await push({ "version.txt": "newest\n" });
      const jobs = await Promise.all([
        runJob(queen, { branch: "main" }),
        runJob(queen, { branch: "main" }),
        runJob(queen, { branch: "main", id: newest }),
      ]);
      for (const job of jobs) {
        equal(job.head, newest);
        match(job.log, /^newest$/m);
      }
    });

    await t.step("a server redirecting elsewhere: the credential does not follow", async () => {
      // The worker's own ref lookup and git's fetch are both sent on to another host.
      const seen: (string | null)[] = [];
      const elsewhere = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (r) => {
        seen.push(r.headers.get("authorization"));
        return new Response("who are you\n", {
          status: 401,
          headers: { "WWW-Authenticate": 'Basic realm="elsewhere"' },
        });
      });
      const redirector = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (r) => {
        const path = new URL(r.url);
        return Response.redirect(
          `http://127.0.0.1:${elsewhere.addr.port}${path.pathname}${path.search}`,
          307,
        );
      });
      try {
        const moved = `http://127.0.0.1:${redirector.addr.port}/app.git`;
        const id = await submitJob(queen, {
          ...customJob(moved, { test: "echo SHOULD-NOT-RUN" }),
          repo: { url: moved, auth: { type: "https", username, password } },
        });
        const job = await waitForJob(queen, id);
        equal(job.result, "errored", await jobLog(queen, id));
        ok(seen.length > 0, "the other host was never contacted");
        deepEqual(seen.filter((header) => header !== null), []);
      } finally {
        await elsewhere.shutdown();
        await redirector.shutdown();
      }
    });
  } finally {
    await worker.stop();
    await queen.proc.stop();
    await server.close();
    for (const dir of [gitRoot, work.path]) await Deno.remove(dir, { recursive: true });
  }
});
