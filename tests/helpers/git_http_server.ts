/**
 * A private git server over HTTP for tests: `git http-backend` run as CGI behind HTTP basic
 * auth, on a free loopback port. Every request is recorded so a test can see which user (if any)
 * fetched.
 */

/** One request the server answered. */
export interface GitHttpRequest {
  method: string;
  path: string;
  /** The authenticated user, or null when the request had no valid credentials. */
  user: string | null;
  status: number;
}

/** A running server; `url(repo)` is the clone URL of a repository under `root`. */
export interface GitHttpServer {
  origin: string;
  url(repo: string): string;
  requests: GitHttpRequest[];
  close(): Promise<void>;
}

/** Splits CGI output into a status, headers and the body. */
export function parseCgi(
  output: Uint8Array<ArrayBuffer>,
): { status: number; headers: Headers; body: Uint8Array<ArrayBuffer> } {
  let end = -1;
  let skip = 0;
  for (let i = 0; i < output.length; i++) {
    if (output[i] === 10 && output[i + 1] === 10) {
      [end, skip] = [i, 2];
      break;
    }
    if (output[i] === 13 && output[i + 1] === 10 && output[i + 2] === 13 && output[i + 3] === 10) {
      [end, skip] = [i, 4];
      break;
    }
  }
  if (end < 0) throw new Error("CGI output has no header block");
  const head = new TextDecoder().decode(output.subarray(0, end));
  const headers = new Headers();
  let status = 200;
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") status = Number(value.split(" ")[0]);
    else headers.append(name, value);
  }
  return { status, headers, body: output.subarray(end + skip) };
}

/**
 * Serves the bare or non-bare repositories under `root` over smart HTTP; only
 * `username:password` gets in, anyone else gets `401` with a Basic challenge.
 */
export function startGitHttpServer(
  root: string,
  credentials: { username: string; password: string },
): GitHttpServer {
  const requests: GitHttpRequest[] = [];
  const expected = "Basic " + btoa(`${credentials.username}:${credentials.password}`);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      const record = (user: string | null, status: number) =>
        requests.push({ method: request.method, path: url.pathname, user, status });
      if (request.headers.get("authorization") !== expected) {
        record(null, 401);
        return new Response("authentication required\n", {
          status: 401,
          headers: { "WWW-Authenticate": 'Basic realm="git"' },
        });
      }
      const body = new Uint8Array(await request.arrayBuffer());
      const child = new Deno.Command("git", {
        args: ["http-backend"],
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          GIT_PROJECT_ROOT: root,
          GIT_HTTP_EXPORT_ALL: "1",
          GIT_CONFIG_NOSYSTEM: "1",
          HOME: root,
          PATH_INFO: decodeURIComponent(url.pathname),
          REQUEST_METHOD: request.method,
          QUERY_STRING: url.search.slice(1),
          CONTENT_TYPE: request.headers.get("content-type") ?? "",
          CONTENT_LENGTH: String(body.length),
          REMOTE_USER: credentials.username,
          REMOTE_ADDR: "127.0.0.1",
          HTTP_CONTENT_ENCODING: request.headers.get("content-encoding") ?? "",
          HTTP_GIT_PROTOCOL: request.headers.get("git-protocol") ?? "",
        },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(body).catch(() => {});
      await writer.close().catch(() => {});
      const out = await child.output();
      if (!out.success && out.stdout.length === 0) {
        record(credentials.username, 500);
        return new Response(new TextDecoder().decode(out.stderr), { status: 500 });
      }
      const cgi = parseCgi(out.stdout);
      record(credentials.username, cgi.status);
      const empty = cgi.status === 204 || cgi.status === 304;
      return new Response(empty ? null : cgi.body, { status: cgi.status, headers: cgi.headers });
    },
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    origin,
    url: (repo) => `${origin}/${repo.replace(/^\/+/, "")}`,
    requests,
    close: () => server.shutdown(),
  };
}

/** A basic-auth gate in front of another HTTP server (`hg serve`, which has no auth of its own). */
export function startAuthProxy(
  upstream: string,
  credentials: { username: string; password: string },
): GitHttpServer {
  const requests: GitHttpRequest[] = [];
  const expected = "Basic " + btoa(`${credentials.username}:${credentials.password}`);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const url = new URL(request.url);
      if (request.headers.get("authorization") !== expected) {
        requests.push({ method: request.method, path: url.pathname, user: null, status: 401 });
        await request.body?.cancel();
        return new Response("authentication required\n", {
          status: 401,
          headers: { "WWW-Authenticate": 'Basic realm="hg"' },
        });
      }
      const headers = new Headers(request.headers);
      for (const name of ["authorization", "host", "content-length"]) headers.delete(name);
      const body = ["GET", "HEAD"].includes(request.method)
        ? undefined
        : new Uint8Array(await request.arrayBuffer());
      const answer = await fetch(new URL(url.pathname + url.search, upstream), {
        method: request.method,
        headers,
        body,
        signal: AbortSignal.timeout(30_000),
      });
      const data = new Uint8Array(await answer.arrayBuffer());
      const out = new Headers(answer.headers);
      for (const name of ["content-encoding", "content-length", "transfer-encoding"]) {
        out.delete(name);
      }
      requests.push({
        method: request.method,
        path: url.pathname,
        user: credentials.username,
        status: answer.status,
      });
      return new Response(data, { status: answer.status, headers: out });
    },
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    origin,
    url: (path) => `${origin}/${path.replace(/^\/+/, "")}`,
    requests,
    close: () => server.shutdown(),
  };
}
