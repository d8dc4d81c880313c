/**
 * `deno task release`: everything a user downloads, in dist/.
 *
 *   strider-<platform>.tar.gz   linux-x64, linux-arm64, darwin-x64, darwin-arm64
 *   strider-windows-x64.zip
 *   strider.js                  the bundle alone (for `deno run`), version and commit stamped
 *   install.sh                  installs the right archive under a prefix (scripts/install.sh)
 *   SHA256SUMS                  of all of the above, for `sha256sum -c`
 *
 * Each archive holds one folder, strider-<version>-<platform>/. Where `deno compile` can get the
 * Deno runtime for a platform (DENORT_BIN for this host's, or Deno's download host for all), the
 * folder holds one compiled binary, `strider` (`strider.exe`). Otherwise it holds the official
 * Deno runtime of that platform from npm (`@deno/<platform>`, the builds Deno publishes), the
 * bundle, and a launcher `strider` (`strider.cmd`) that runs the bundle with exactly the
 * permissions of the role the command plays (cli/permissions.ts).
 *
 * Usage: deno task release [--platform P]... [--mode auto|archive|compile] [--out dist]
 *                          [--cache DIR]   (npm packages; default ~/.cache/strider-release)
 *                          [--registry URL]  (without npm: where to fetch them; default npm's)
 * @module
 */
import { parseArgs } from "node:util";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { VERSION } from "../protocol/mod.ts";
import { hex } from "../protocol/hex.ts";
import { STAMP_PREFIX } from "../cli/build_info.ts";
import { type Entry, tarGz, zip } from "./archive.ts";
import { cmdLauncher, shLauncher } from "./launchers.ts";

export const PLATFORMS = {
  "linux-x64": { target: "x86_64-unknown-linux-gnu", npm: "@deno/linux-x64-glibc" },
  "linux-arm64": { target: "aarch64-unknown-linux-gnu", npm: "@deno/linux-arm64-glibc" },
  "darwin-x64": { target: "x86_64-apple-darwin", npm: "@deno/darwin-x64" },
  "darwin-arm64": { target: "aarch64-apple-darwin", npm: "@deno/darwin-arm64" },
  "windows-x64": { target: "x86_64-pc-windows-msvc", npm: "@deno/win32-x64" },
} as const;
export type Platform = keyof typeof PLATFORMS;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const decoder = new TextDecoder();

/** A failure the release explains itself; it ends the run with code 1 after cleaning up. */
class ReleaseError extends Error {}

function fail(message: string): never {
  throw new ReleaseError(message);
}

async function run(cmd: string, args: string[], cwd = root): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdin: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout).trim();
}

/** The commit to stamp (`-dirty` with uncommitted changes to tracked files) and its time. */
async function commitOf(): Promise<{ commit: string; time: number }> {
  try {
    const id = await run("git", ["rev-parse", "--short=12", "HEAD"]);
    const dirty = await run("git", ["status", "--porcelain", "--untracked-files=no"]);
    const time = Number(await run("git", ["log", "-1", "--format=%ct"]));
    return { commit: dirty ? `${id}-dirty` : id, time };
  } catch (error) {
    console.warn(`release: no git commit to stamp (${(error as Error).message.split("\n")[0]})`);
    return { commit: "unknown", time: Math.floor(Date.now() / 1000) };
  }
}

/** Bundles main.ts and stamps the commit into it. */
async function stampedBundle(commit: string, work: string): Promise<Uint8Array> {
  const raw = join(work, "strider.js");
  const bundled = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(root, "scripts", "bundle.ts"), "--output", raw],
    cwd: root,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!bundled.success) fail("scripts/bundle.ts failed (see above)");
  const text = await Deno.readTextFile(raw);
  const stamp = `${STAMP_PREFIX}source`;
  const count = text.split(stamp).length - 1;
  if (count !== 1) fail(`the bundle holds the commit stamp '${stamp}' ${count} times, not once`);
  return new TextEncoder().encode(text.replace(stamp, `${STAMP_PREFIX}${commit}`));
}

/** Reads one file out of an npm package (a gzipped tar). */
async function fromTgz(tgz: string, want: string): Promise<Uint8Array | undefined> {
  const stream = (await Deno.open(tgz)).readable.pipeThrough(new DecompressionStream("gzip"));
  const tar = new Uint8Array(await new Response(stream).arrayBuffer());
  for (let at = 0; at + 512 <= tar.length;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((byte) => byte === 0)) break;
    const text = (from: number, size: number) =>
      decoder.decode(header.subarray(from, from + size)).replace(/\0.*$/s, "");
    const prefix = text(345, 155);
    const name = (prefix ? `${prefix}/` : "") + text(0, 100);
    const size = parseInt(text(124, 12).trim() || "0", 8);
    if (name === want) return tar.slice(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

/**
 * The npm package `name@version` straight from `registry`, checked against the integrity the
 * registry lists: for machines without npm.
 */
async function fromRegistry(
  name: string,
  version: string,
  registry: string,
): Promise<Uint8Array> {
  const metaUrl = `${registry}/${name.replace("/", "%2f")}/${version}`;
  const meta = await fetch(metaUrl, { signal: AbortSignal.timeout(60_000) });
  if (!meta.ok) throw new Error(`${metaUrl} answered ${meta.status}`);
  const dist = (await meta.json())?.dist;
  const integrity = String(dist?.integrity ?? "");
  if (!dist?.tarball || !integrity.startsWith("sha512-")) {
    throw new Error(`${metaUrl} lists no tarball with a sha512 integrity`);
  }
  const response = await fetch(dist.tarball, { signal: AbortSignal.timeout(600_000) });
  if (!response.ok) throw new Error(`${dist.tarball} answered ${response.status}`);
  const data = new Uint8Array(await response.arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", data));
  const actual = `sha512-${btoa(String.fromCharCode(...digest))}`;
  if (actual !== integrity) {
    throw new Error(`${dist.tarball} has integrity ${actual}, but the registry lists ${integrity}`);
  }
  return data;
}

/**
 * The Deno runtime of `platform` from npm, downloaded once into `cache` with `npm pack` (or from
 * the registry directly where npm is not installed).
 */
async function denoRuntime(
  platform: Platform,
  cache: string,
  registry: string,
): Promise<Uint8Array> {
  const { npm } = PLATFORMS[platform];
  const version = Deno.version.deno;
  const file = join(cache, `${npm.slice(1).replace("/", "-")}-${version}.tgz`);
  try {
    await Deno.stat(file);
    console.log(`release: ${npm}@${version} from the cache (${file})`);
  } catch {
    await Deno.mkdir(cache, { recursive: true });
    // Into a fresh folder first: an interrupted download must not stay in the cache.
    const partial = await Deno.makeTempDir({ dir: cache, prefix: ".partial-" });
    let problem: string | undefined;
    try {
      try {
        console.log(`release: npm pack ${npm}@${version}`);
        await run("npm", ["pack", `${npm}@${version}`, "--pack-destination", partial, "--silent"]);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
        console.log(`release: npm is not installed: ${npm}@${version} from the registry`);
        await Deno.writeFile(
          join(partial, basename(file)),
          await fromRegistry(npm, version, registry),
        );
      }
      await Deno.rename(join(partial, basename(file)), file);
    } catch (error) {
      problem = (error as Error).message;
    } finally {
      await Deno.remove(partial, { recursive: true }).catch(() => {});
    }
    if (problem) {
      fail(
        `cannot get the Deno runtime for ${platform} from npm (${npm}@${version}): ${problem}\n` +
          `release: the npm registry must be reachable, or put the package at ${file}`,
      );
    }
  }
  const exe = platform.startsWith("windows") ? "deno.exe" : "deno";
  const binary = await fromTgz(file, `package/${exe}`);
  if (!binary) fail(`${file} holds no package/${exe}; delete it and run again`);
  return binary;
}

/** Where npm packages are cached: --cache, STRIDER_RELEASE_CACHE, or ~/.cache/strider-release. */
export function cacheDir(option?: string): string {
  const home = Deno.env.get("HOME") ?? root;
  return resolve(
    option ?? Deno.env.get("STRIDER_RELEASE_CACHE") ??
      join(Deno.env.get("XDG_CACHE_HOME") ?? join(home, ".cache"), "strider-release"),
  );
}

/** Whether `deno compile` can download runtimes (denort) from Deno's host. */
async function denoHostReachable(): Promise<boolean> {
  const url = `https://dl.deno.land/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`;
  try {
    const response = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(5000) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** Compiles `entry` for `platform` with scripts/compile.ts; returns the binary. */
async function compiled(platform: Platform, entry: string, work: string): Promise<Uint8Array> {
  const { target } = PLATFORMS[platform];
  const out = join(work, "compiled");
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(root, "scripts", "compile.ts"),
      "--target",
      target,
      "--entry",
      entry,
      "--out-dir",
      out,
    ],
    cwd: root,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!result.success) fail(`scripts/compile.ts failed for ${platform} (see above)`);
  return await Deno.readFile(
    join(out, `strider-${target}${platform.startsWith("windows") ? ".exe" : ""}`),
  );
}

async function sha256(data: Uint8Array): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

/** A size as the README lists it: MiB, or KiB below one MiB. */
const size = (bytes: number) =>
  bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`;

if (import.meta.main) {
  try {
    await release();
  } catch (error) {
    if (!(error instanceof ReleaseError)) throw error;
    console.error(`release: error: ${error.message}`);
    Deno.exit(1);
  }
}

async function release(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      platform: { type: "string", multiple: true },
      mode: { type: "string", default: "auto" },
      out: { type: "string", default: join(root, "dist") },
      cache: { type: "string" },
      registry: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const names = Object.keys(PLATFORMS) as Platform[];
  if (values.help) {
    console.log(
      "usage: deno task release [--platform P]... [--mode auto|archive|compile] [--out dist] " +
        `[--cache DIR] [--registry URL]\nplatforms: ${names.join(", ")}`,
    );
    Deno.exit(0);
  }
  const unknown = (values.platform ?? []).filter((p) => !(p in PLATFORMS));
  if (unknown.length > 0) fail(`unknown platform ${unknown.join(", ")}; use ${names.join(", ")}`);
  if (!["auto", "archive", "compile"].includes(values.mode)) {
    fail(`--mode must be auto, archive or compile, not '${values.mode}'`);
  }
  const platforms = values.platform ? [...new Set(values.platform)] as Platform[] : names;
  const out = resolve(values.out);
  const cache = cacheDir(values.cache);
  // Used only where npm is not installed; npm itself reads its own configuration.
  const registry = (values.registry || Deno.env.get("NPM_CONFIG_REGISTRY") ||
    "https://registry.npmjs.org").replace(/\/$/, "");

  // Which platforms get a compiled binary: all where Deno's host answers, this host's with
  // DENORT_BIN, none with --mode archive.
  const denortBin = Deno.env.get("DENORT_BIN");
  const host = names.find((p) => PLATFORMS[p].target === Deno.build.target);
  let compile = new Set<Platform>();
  if (values.mode !== "archive") {
    if (denortBin) {
      if (host && platforms.includes(host)) compile.add(host);
      console.log(`release: DENORT_BIN is set: compiling ${host ?? "no platform"}`);
    } else if (await denoHostReachable()) {
      compile = new Set(platforms);
      console.log("release: Deno's download host answers: compiling every platform");
    } else {
      console.log("release: Deno's download host is unreachable: archives with the npm runtime");
    }
    if (values.mode === "compile" && compile.size < platforms.length) {
      fail(
        `--mode compile cannot compile ${platforms.filter((p) => !compile.has(p)).join(", ")}: ` +
          "deno compile needs Deno's download host, or DENORT_BIN for this host's platform",
      );
    }
  }

  const { commit, time } = await commitOf();
  console.log(`release: strider ${VERSION}, commit ${commit}, into ${out}`);
  const work = await Deno.makeTempDir({ prefix: "strider-release-" });
  try {
    const bundle = await stampedBundle(commit, work);
    const stamped = join(work, "stamped", "strider.js");
    await Deno.mkdir(dirname(stamped), { recursive: true });
    await Deno.writeFile(stamped, bundle);

    const docs: Entry[] = [];
    for (const doc of ["README.md", "CHANGELOG.md", "SECURITY.md"]) {
      docs.push({ path: doc, data: await Deno.readFile(join(root, doc)), mode: 0o644 });
    }
    const units: Entry[] = [];
    for (const unit of ["strider-queen.service", "strider-worker.service"]) {
      const path = `contrib/systemd/${unit}`;
      units.push({ path, data: await Deno.readFile(join(root, path)), mode: 0o644 });
    }

    const files = new Map<string, Uint8Array>();
    for (const platform of platforms) {
      const windows = platform.startsWith("windows");
      const folder = `strider-${VERSION}-${platform}`;
      const entries: Entry[] = compile.has(platform)
        ? [{
          path: windows ? "strider.exe" : "strider",
          data: await compiled(platform, stamped, work),
          mode: 0o755,
        }]
        : [
          windows
            ? { path: "strider.cmd", data: new TextEncoder().encode(cmdLauncher()), mode: 0o755 }
            : { path: "strider", data: new TextEncoder().encode(shLauncher()), mode: 0o755 },
          { path: "strider.js", data: bundle, mode: 0o644 },
          {
            path: windows ? "deno.exe" : "deno",
            data: await denoRuntime(platform, cache, registry),
            mode: 0o755,
          },
        ];
      entries.push(...docs, ...(platform.startsWith("linux") ? units : []));
      const inFolder = entries.map((entry) => ({ ...entry, path: `${folder}/${entry.path}` }));
      const name = `strider-${platform}${windows ? ".zip" : ".tar.gz"}`;
      console.log(`release: ${name} (${compile.has(platform) ? "compiled" : "deno + bundle"})`);
      files.set(name, windows ? await zip(inFolder, time) : await tarGz(inFolder, time));
    }
    files.set("strider.js", bundle);
    files.set("install.sh", await Deno.readFile(join(root, "scripts", "install.sh")));

    await Deno.mkdir(out, { recursive: true });
    // Files of an earlier release must not sit beside this one's SHA256SUMS.
    for await (const entry of Deno.readDir(out)) {
      if (/^strider-.*\.(tar\.gz|zip)$|^SHA256SUMS$|^install\.sh$/.test(entry.name)) {
        await Deno.remove(join(out, entry.name));
      }
    }
    let sums = "";
    for (const [name, data] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
      await Deno.writeFile(join(out, name), data, { mode: name.endsWith(".sh") ? 0o755 : 0o644 });
      sums += `${await sha256(data)}  ${name}\n`;
    }
    await Deno.writeTextFile(join(out, "SHA256SUMS"), sums);

    console.log(
      `\nrelease: strider ${VERSION} (commit ${commit}) in ${relative(Deno.cwd(), out) || out}/`,
    );
    for (const [name, data] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
      console.log(`  ${name.padEnd(28)} ${size(data.length).padStart(10)}`);
    }
    console.log(`  ${"SHA256SUMS".padEnd(28)} ${size(sums.length).padStart(10)}`);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
