/**
 * The release as a user gets it (`deno task release`, archive mode): the linux-x64 archive
 * unpacked into an empty folder runs a queen, a worker and a real job with no `deno` on PATH;
 * every platform's archive holds its own runtime, the bundle and the launcher; SHA256SUMS checks;
 * install.sh installs from a served release and refuses a tampered archive.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { PROTOCOL_VERSION, VERSION } from "../protocol/mod.ts";
import { ROLE_PERMISSIONS } from "../cli/permissions.ts";
import { cmdLauncher, shLauncher } from "../scripts/launchers.ts";
import { cacheDir, PLATFORMS } from "../scripts/release.ts";
import type { Platform } from "../scripts/release.ts";
import { API_TOKEN, droneNames, Proc, ROOT, waitUntil, WORKER_TOKEN } from "./helpers/cluster.ts";
import { makeRepo } from "./helpers/git_repo.ts";
import { expectedCommit, releaseDist, releaseTemp, runProgram } from "./helpers/release.ts";

/** A folder of links to every program in /usr/bin except deno (and `also`): a machine without. */
async function pathWithoutDeno(also: string[] = []): Promise<string> {
  const bin = await releaseTemp("nodeno-bin-");
  for await (const entry of Deno.readDir("/usr/bin")) {
    if (entry.name === "deno" || also.includes(entry.name)) continue;
    await Deno.symlink(join("/usr/bin", entry.name), join(bin, entry.name));
  }
  return bin;
}

/** The permission flags a running process was started with, from /proc. */
async function runningFlags(pid: number): Promise<{ program: string; flags: string[] }> {
  const argv = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0");
  return { program: argv[0], flags: argv.filter((arg) => arg.startsWith("--allow-")) };
}

/** The first `bytes` bytes of `command`'s output (a file inside an archive). */
async function head(command: string, bytes: number): Promise<Uint8Array> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `${command} | head -c ${bytes}`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.stdout;
}

/** Which platform a Deno runtime binary is for, read from its executable header. */
function platformOf(header: Uint8Array): string {
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (view.getUint32(0) === 0x7f454c46) {
    const machine = view.getUint16(18, true);
    return machine === 0x3e ? "linux-x64" : machine === 0xb7 ? "linux-arm64" : `elf-${machine}`;
  }
  if (view.getUint32(0, true) === 0xfeedfacf) {
    const cpu = view.getUint32(4, true);
    return cpu === 0x01000007 ? "darwin-x64" : cpu === 0x0100000c ? "darwin-arm64" : `macho-${cpu}`;
  }
  if (header[0] === 0x4d && header[1] === 0x5a) {
    const pe = view.getUint32(0x3c, true);
    const machine = view.getUint16(pe + 4, true);
    return view.getUint32(pe) === 0x50450000 && machine === 0x8664 ? "windows-x64" : "pe-other";
  }
  return "unknown";
}

Deno.test({
  name: "the linux-x64 release runs a queen, a worker and a job on a machine without deno",
  sanitizeResources: false,
  async fn() {
    const dist = await releaseDist();
    const place = await releaseTemp("unpacked-");
    equal((await Array.fromAsync(Deno.readDir(place))).length, 0);
    const untar = await runProgram("tar", ["-xzf", join(dist, "strider-linux-x64.tar.gz")], {
      cwd: place,
    });
    equal(untar.code, 0, untar.stderr);
    const folder = join(place, `strider-${VERSION}-linux-x64`);
    const strider = join(folder, "strider");
    const env = {
      PATH: await pathWithoutDeno(),
      HOME: await releaseTemp("home-"),
      LANG: "C.UTF-8",
    };
    const noDeno = await runProgram("sh", ["-c", "command -v deno"], { env, clearEnv: true });
    ok(noDeno.code !== 0, `deno is on the test's PATH: ${noDeno.stdout}`);

    const version = await runProgram(strider, ["--version"], { env, clearEnv: true });
    equal(version.code, 0, version.stderr);
    equal(
      version.stdout,
      `strider ${VERSION} (commit ${await expectedCommit()}, protocol ${PROTOCOL_VERSION})\n`,
    );

    const data = await releaseTemp("release-queen-");
    const workdir = await releaseTemp("release-work-");
    const run = { program: strider, env, inherit: false };
    const queen = new Proc([
      "queen",
      ...["--port", "0", "--host", "127.0.0.1", "--data", data],
      ...["--worker-token", WORKER_TOKEN, "--api-token", API_TOKEN],
    ], run);
    let worker: Proc | undefined;
    try {
      const [, url] = await queen.waitFor(/listening on (http:\/\/\S+)/, 60_000);
      // The launcher exec'd the archive's own runtime with exactly the queen's permissions.
      const queenRun = await runningFlags(queen.pid);
      equal(queenRun.program, join(await Deno.realPath(folder), "deno"));
      deepEqual(queenRun.flags, [...ROLE_PERMISSIONS.queen.flags]);

      worker = new Proc([
        "worker",
        ...["--connect", url, "--token", WORKER_TOKEN, "--name", "released"],
        ...["--workdir", workdir],
      ], run);
      const testQueen = { url, proc: queen, data };
      await waitUntil(async () => (await droneNames(testQueen)).includes("released"), 60_000);
      deepEqual((await runningFlags(worker.pid)).flags, [...ROLE_PERMISSIONS.worker.flags]);

      const repo = await makeRepo({ "README": "released\n" });
      const submit = await runProgram(strider, [
        "submit",
        ...["--queen", url, "--repo", repo.path],
        ...["--test", "cat README; echo from the release", "--follow"],
      ], { env: { ...env, STRIDER_API_TOKEN: API_TOKEN }, clearEnv: true });
      equal(submit.code, 0, submit.stdout + submit.stderr);
      match(submit.stdout, /released\nfrom the release/);

      // A client command through the same launcher.
      const drones = await runProgram(strider, ["drones", "--queen", url], {
        env: { ...env, STRIDER_API_TOKEN: API_TOKEN },
        clearEnv: true,
      });
      equal(drones.code, 0, drones.stderr);
      match(drones.stdout, /released/);
    } finally {
      // SIGTERM drains the idle worker: it exits 0.
      const drained = worker ? (await worker.stop()).code : 0;
      await queen.stop();
      equal(drained, 0, worker ? worker.stdout + worker.stderr : "");
    }
  },
});

Deno.test("every platform's archive holds its runtime, the bundle and its launcher", async () => {
  const dist = await releaseDist();
  const bundle = await Deno.readFile(join(dist, "strider.js"));
  const bundleSum = await runProgram("sha256sum", [join(dist, "strider.js")]);
  for (const platform of Object.keys(PLATFORMS) as Platform[]) {
    const windows = platform.startsWith("windows");
    const archive = join(dist, `strider-${platform}${windows ? ".zip" : ".tar.gz"}`);
    const folder = `strider-${VERSION}-${platform}`;
    const expected = windows
      ? ["strider.cmd", "strider.js", "deno.exe", "README.md", "CHANGELOG.md", "SECURITY.md"]
      : ["strider", "strider.js", "deno", "README.md", "CHANGELOG.md", "SECURITY.md"];
    if (platform.startsWith("linux")) {
      expected.push(
        "contrib/systemd/strider-queen.service",
        "contrib/systemd/strider-worker.service",
      );
    }
    const listing = windows
      ? await runProgram("unzip", ["-Z1", archive])
      : await runProgram("tar", ["-tzf", archive]);
    equal(listing.code, 0, listing.stderr);
    const files = listing.stdout.split("\n").filter((line) => line && !line.endsWith("/"));
    deepEqual(files.toSorted(), expected.map((file) => `${folder}/${file}`).toSorted(), platform);

    const read = (file: string) =>
      windows
        ? `unzip -p '${archive}' '${folder}/${file}'`
        : `tar -xzOf '${archive}' '${folder}/${file}'`;
    const launcher = new TextDecoder().decode(
      await head(read(windows ? "strider.cmd" : "strider"), 1 << 20),
    );
    equal(launcher, windows ? cmdLauncher() : shLauncher(), `${platform} launcher`);
    const runtime = await head(read(windows ? "deno.exe" : "deno"), 4096);
    equal(platformOf(runtime), platform, `${platform} runtime`);
    const inner = await runProgram("sh", ["-c", `${read("strider.js")} | sha256sum`]);
    equal(inner.stdout.split(" ")[0], bundleSum.stdout.split(" ")[0], `${platform} strider.js`);

    if (windows) {
      const test = await runProgram("unzip", ["-tq", archive]);
      equal(test.code, 0, `unzip -t ${platform}: ${test.stdout}${test.stderr}`);
    } else {
      // Both programs keep their execute bits.
      const verbose = await runProgram("tar", ["-tvzf", archive]);
      for (const program of ["strider", "deno"]) {
        const line = verbose.stdout.split("\n").find((l) => l.endsWith(`${folder}/${program}`));
        match(line ?? "", /^-rwxr-xr-x /, `${platform} ${program} mode`);
      }
    }
  }
  // The stamped commit is in the standalone bundle too.
  match(new TextDecoder().decode(bundle), new RegExp(`strider-commit:${await expectedCommit()}"`));
});

Deno.test("SHA256SUMS covers every file of the release and checks", async () => {
  const dist = await releaseDist();
  const check = await runProgram("sha256sum", ["-c", "--strict", "SHA256SUMS"], { cwd: dist });
  equal(check.code, 0, check.stdout + check.stderr);
  const listed = (await Deno.readTextFile(join(dist, "SHA256SUMS"))).trim().split("\n")
    .map((line) => line.split(/\s+/)[1]);
  const present = (await Array.fromAsync(Deno.readDir(dist))).map((e) => e.name)
    .filter((name) => name !== "SHA256SUMS");
  deepEqual(listed.toSorted(), present.toSorted());
  deepEqual(present.toSorted(), [
    "install.sh",
    "strider-darwin-arm64.tar.gz",
    "strider-darwin-x64.tar.gz",
    "strider-linux-arm64.tar.gz",
    "strider-linux-x64.tar.gz",
    "strider-windows-x64.zip",
    "strider.js",
  ]);
  // The README lists what the release writes.
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  for (const name of [...present, "SHA256SUMS"]) ok(readme.includes(`| \`${name}\``), name);
});

/** Serves the files of `dir` (by base name only) over HTTP on a loopback port. */
function serve(dir: string): { url: string; close: () => Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const name = new URL(req.url).pathname.slice(1);
    if (!/^[\w.-]+$/.test(name)) return new Response("bad name", { status: 400 });
    try {
      return new Response(await Deno.readFile(join(dir, name)));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("install.sh installs the served release under a prefix and links strider", async () => {
  const dist = await releaseDist();
  const server = serve(dist);
  try {
    const prefix = join(await releaseTemp("prefix-"), "opt");
    const install = await runProgram("sh", [
      join(dist, "install.sh"),
      ...["--prefix", prefix, "--base-url", server.url],
    ]);
    equal(install.code, 0, install.stdout + install.stderr);
    match(install.stdout, new RegExp(`installed strider ${VERSION.replaceAll(".", "\\.")} `));
    const link = join(prefix, "bin", "strider");
    ok((await Deno.lstat(link)).isSymlink);
    equal(await Deno.readLink(link), `../lib/strider/strider-${VERSION}-linux-x64/strider`);
    // Through the link, from another folder, with no deno on PATH.
    const version = await runProgram(link, ["--version"], {
      env: { PATH: await pathWithoutDeno(), HOME: prefix },
      clearEnv: true,
      cwd: Deno.env.get("TMPDIR") ?? "/tmp",
    });
    equal(version.code, 0, version.stderr);
    match(version.stdout, new RegExp(`^strider ${VERSION.replaceAll(".", "\\.")} \\(commit `));

    // Installing again (an upgrade in place) replaces the folder and keeps the link working.
    const again = await runProgram("sh", [
      join(dist, "install.sh"),
      ...["--prefix", prefix, "--base-url", server.url],
    ]);
    equal(again.code, 0, again.stdout + again.stderr);
    equal((await runProgram(link, ["--version"])).code, 0);
  } finally {
    await server.close();
  }
});

Deno.test("install.sh refuses an archive whose checksum does not match and installs nothing", async () => {
  const dist = await releaseDist();
  const tampered = await releaseTemp("tampered-");
  for (const name of ["SHA256SUMS", "install.sh"]) {
    await Deno.copyFile(join(dist, name), join(tampered, name));
  }
  // The same archive with one byte changed in the middle, as a broken mirror would serve it.
  const archive = await Deno.readFile(join(dist, "strider-linux-x64.tar.gz"));
  archive[archive.length >> 1] ^= 0xff;
  await Deno.writeFile(join(tampered, "strider-linux-x64.tar.gz"), archive);
  const server = serve(tampered);
  try {
    const prefix = join(await releaseTemp("prefix-"), "opt");
    const install = await runProgram("sh", [
      join(tampered, "install.sh"),
      ...["--prefix", prefix, "--base-url", server.url],
    ]);
    equal(install.code, 1, install.stdout + install.stderr);
    match(
      install.stderr,
      /strider-linux-x64\.tar\.gz has SHA-256 [0-9a-f]{64} but SHA256SUMS says/,
    );
    const made = await Deno.stat(prefix).then(() => true, () => false);
    ok(!made, `${prefix} was created`);

    // A release without this platform's archive says so.
    const other = await runProgram("sh", [
      join(tampered, "install.sh"),
      ...["--prefix", prefix, "--base-url", server.url, "--platform", "linux-riscv64"],
    ]);
    equal(other.code, 1);
    match(other.stderr, /SHA256SUMS lists no strider-linux-riscv64\.tar\.gz/);
  } finally {
    await server.close();
  }
});

Deno.test("install.sh run from an unpacked release folder installs from that folder", async () => {
  const dist = await releaseDist();
  const prefix = join(await releaseTemp("prefix-"), "local");
  const install = await runProgram("sh", [join(dist, "install.sh"), "--prefix", prefix], {
    cwd: "/",
  });
  equal(install.code, 0, install.stdout + install.stderr);
  const version = await runProgram(join(prefix, "bin", "strider"), ["--version"]);
  match(version.stdout, /^strider /);
});

Deno.test("a release whose runtime for deno compile is missing fails saying so and writes nothing", async () => {
  const out = join(await releaseTemp("no-denort-"), "dist");
  const release = await runProgram(Deno.execPath(), [
    "run",
    "-A",
    join(ROOT, "scripts", "release.ts"),
    ...["--platform", "linux-x64", "--out", out],
  ], { env: { DENORT_BIN: "/nonexistent/denort", NO_COLOR: "1" }, cwd: ROOT });
  equal(release.code, 1);
  const said = release.stdout + release.stderr;
  match(said, /DENORT_BIN=\/nonexistent\/denort could not be used as the runtime/);
  match(said, /release: error: scripts\/compile\.ts failed for linux-x64/);
  ok(!(await Deno.stat(out).then(() => true, () => false)), `${out} was written`);
});

/** A stand-in npm registry on loopback serving one package's metadata and `tarball()`. */
function fakeRegistry(tarball: () => Uint8Array<ArrayBuffer>, integrity: string) {
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req): Response => {
      const path = new URL(req.url).pathname;
      if (path.endsWith(".tgz")) return new Response(tarball());
      const dist = { tarball: `http://127.0.0.1:${server.addr.port}/package.tgz`, integrity };
      return Response.json({ dist });
    },
  );
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("without npm the release takes the runtime from the registry, checked", async () => {
  const dist = await releaseDist();
  const tgz = await Deno.readFile(
    join(cacheDir(), `deno-darwin-arm64-${Deno.version.deno}.tgz`),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", tgz));
  const integrity = `sha512-${btoa(String.fromCharCode(...digest))}`;
  let serve = tgz;
  const registry = fakeRegistry(() => serve, integrity);
  const release = async () => {
    const place = await releaseTemp("registry-");
    const result = await runProgram(Deno.execPath(), [
      "run",
      "-A",
      join(ROOT, "scripts", "release.ts"),
      ...["--mode", "archive", "--platform", "darwin-arm64"],
      ...["--cache", join(place, "cache"), "--out", join(place, "dist")],
      ...["--registry", registry.url],
    ], {
      env: { PATH: await pathWithoutDeno(["npm"]) },
      cwd: ROOT,
    });
    return { ...result, place };
  };
  try {
    const made = await release();
    equal(made.code, 0, made.stdout + made.stderr);
    match(made.stdout, /npm is not installed: @deno\/darwin-arm64@\S+ from the registry/);
    // The same archive, byte for byte, as the one made with npm pack.
    deepEqual(
      await Deno.readFile(join(made.place, "dist", "strider-darwin-arm64.tar.gz")),
      await Deno.readFile(join(dist, "strider-darwin-arm64.tar.gz")),
    );

    // A registry (or proxy) serving altered bytes: no release, nothing cached.
    serve = tgz.slice();
    serve[serve.length >> 1] ^= 0xff;
    const refused = await release();
    equal(refused.code, 1, refused.stdout + refused.stderr);
    match(refused.stderr, /package\.tgz has integrity sha512-\S+, but the registry lists sha512-/);
    deepEqual(await Array.fromAsync(Deno.readDir(join(refused.place, "cache"))), []);
    ok(!(await Deno.stat(join(refused.place, "dist")).then(() => true, () => false)));
  } finally {
    await registry.close();
  }
});
