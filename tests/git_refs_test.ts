/**
 * The worker's own question of which commit a ref names (`worker/git_refs.ts`), against real and
 * hostile HTTP servers: it answers only from a well-formed reply of the repository's own server,
 * reads a bounded amount, follows no redirect, tells a refused credential from a server that
 * cannot be asked, and a refused credential is not remembered.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { resolveRemoteRef } from "../worker/git_refs.ts";
import { git, makeRepo } from "./helpers/git_repo.ts";
import { startGitHttpServer } from "./helpers/git_http_server.ts";

Deno.test("a ref is read from the repository's own smart-HTTP server, with its credential", async () => {
  const root = await Deno.makeTempDir({ prefix: "strider-refs-" });
  const repo = await makeRepo({ "a.txt": "a\n" });
  const server = startGitHttpServer(root, { username: "ci", password: "right-pw" });
  try {
    await git(root, "clone", "-q", "--bare", repo.path, "r.git");
    await git(`${root}/r.git`, "branch", "main-other", repo.commit);
    const url = server.url("r.git");
    // A wrong password, or none, is refused and not held against the repository...
    const wrong = { type: "https" as const, username: "ci", password: "wrong-pw" };
    deepEqual(await resolveRemoteRef(url, "refs/heads/main", wrong), {
      kind: "refused",
      status: 401,
    });
    deepEqual(await resolveRemoteRef(url, "refs/heads/main", undefined), {
      kind: "refused",
      status: 401,
    });
    // ...so the right one, next, is asked and answered in one request.
    const before = server.requests.length;
    const right = { type: "https" as const, username: "ci", password: "right-pw" };
    deepEqual(await resolveRemoteRef(url, "refs/heads/main", right), {
      kind: "answered",
      id: repo.commit,
    });
    equal(server.requests.length - before, 1);
    // A ref the repository lacks: answered, with no commit (git then says what is missing).
    deepEqual(await resolveRemoteRef(url, "refs/heads/mai", right), {
      kind: "answered",
      id: undefined,
    });
    // A local path: read from its files.
    const local = { kind: "answered", id: repo.commit };
    deepEqual(await resolveRemoteRef(repo.path, "refs/heads/main", undefined), local);
    deepEqual(await resolveRemoteRef(`file://${repo.path}`, "refs/heads/main", undefined), local);
    deepEqual(await resolveRemoteRef(`${repo.path}/nowhere`, "refs/heads/main", undefined), {
      kind: "unknown",
    });
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
    await Deno.remove(repo.path, { recursive: true });
  }
});

Deno.test("a hostile server gets no credential elsewhere and cannot fill the worker's memory", async () => {
  const seenElsewhere: (string | null)[] = [];
  const elsewhere = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (r) => {
    seenElsewhere.push(r.headers.get("authorization"));
    return new Response("0000", {
      headers: { "content-type": "application/x-git-upload-pack-result" },
    });
  });
  let sent = 0;
  const hostile = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (r) => {
    const path = new URL(r.url).pathname;
    if (path.startsWith("/moved")) {
      return Response.redirect(`http://127.0.0.1:${elsewhere.addr.port}${path}`, 307);
    }
    // A well-formed start, then pkt-lines without end.
    const line = new TextEncoder().encode(`0032${"a".repeat(40)} refs/heads/x\n`.repeat(1024));
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += line.length;
        controller.enqueue(line);
      },
    });
    return new Response(body, {
      headers: { "content-type": "application/x-git-upload-pack-result" },
    });
  });
  const auth = { type: "https" as const, username: "ci", password: "pw-for-this-host" };
  try {
    const base = `http://127.0.0.1:${hostile.addr.port}`;
    deepEqual(await resolveRemoteRef(`${base}/moved/r.git`, "refs/heads/main", auth), {
      kind: "unknown",
    });
    equal(seenElsewhere.length, 0, "the redirect was followed");
    deepEqual(await resolveRemoteRef(`${base}/endless.git`, "refs/heads/x", auth), {
      kind: "unknown",
    });
    // Reading stopped near the limit (64 KiB), whatever the socket buffered beyond it.
    ok(sent < 32 * 1024 * 1024, `${sent} bytes were pulled`);
  } finally {
    await hostile.shutdown();
    await elsewhere.shutdown();
  }
});
