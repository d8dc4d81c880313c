/**
 * TLS: a queen serving HTTPS/WSS with a certificate from a private CA, a worker that trusts that
 * CA with `--ca`, and a job that passes over it. Certificates are made with openssl in the test.
 */
import { equal, match, rejects } from "node:assert/strict";
import { join } from "node:path";
import { API_TOKEN, customJob, startQueen, startWorker, waitUntil } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";

async function openssl(cwd: string, ...args: string[]) {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A CA and a server certificate for 127.0.0.1 signed by it. */
async function makeCertificates(dir: string) {
  await openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=strider test CA",
  );
  await openssl(
    dir,
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  );
  await Deno.writeTextFile(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  return { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server.key") };
}

Deno.test("a job passes over TLS with a worker trusting a private CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strider-tls-" });
  const certs = await makeCertificates(dir);
  const repo = await makeRepo({ "secure.txt": "over tls\n" });
  const queen = await startQueen({ args: ["--tls-cert", certs.cert, "--tls-key", certs.key] });
  const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.ca)] });
  const worker = await startWorker(queen, {
    name: "tls-worker",
    args: ["--ca", certs.ca],
    wait: false,
  });
  const call = async (path: string, init: RequestInit = {}) =>
    await fetch(new URL(path, queen.url), {
      ...init,
      client,
      headers: { authorization: `Bearer ${API_TOKEN}`, "content-type": "application/json" },
      signal: AbortSignal.timeout(10_000),
    });
  try {
    match(queen.url, /^https:\/\//);
    // Without trusting the CA, a client cannot even connect.
    await rejects(fetch(new URL("/healthz", queen.url), { signal: AbortSignal.timeout(10_000) }));
    await waitUntil(
      async () => (await (await call("/healthz")).json()).drones === 1,
      30_000,
      "the worker over wss",
    );
    const created = await call("/api/jobs", {
      method: "POST",
      body: JSON.stringify(customJob(repo.path, { test: "cat secure.txt" })),
    });
    equal(created.status, 201);
    const { id } = await created.json();
    let result = null;
    await waitUntil(
      async () => (result = (await (await call(`/api/jobs/${id}`)).json()).result) !== null,
      30_000,
    );
    equal(result, "passed");
    match(await (await call(`/api/jobs/${id}/log`)).text(), /over tls/);
  } finally {
    client.close();
    await worker.stop();
    await queen.proc.stop();
  }
});
