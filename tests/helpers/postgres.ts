/**
 * A real PostgreSQL cluster for tests: `initdb` into a temp dir as the `postgres` user (initdb
 * refuses root), `pg_ctl` on a free port on 127.0.0.1, trust authentication on loopback only.
 * One cluster per test file (`postgresCluster()` starts it once); it is stopped and removed when
 * the test process ends. Each caller takes a fresh database of its own (`newDatabase`).
 */
import { join } from "node:path";

const BIN = Deno.env.get("STRIDER_PG_BIN") ?? "/usr/lib/postgresql/15/bin";

export interface PostgresCluster {
  port: number;
  /** A new empty database; resolves to its `postgres://` URL. */
  newDatabase(): Promise<string>;
}

let started: Promise<PostgresCluster> | undefined;

/** Whether this process runs as root (then the cluster's tools run as `postgres`). */
const isRoot = () => Deno.uid() === 0;

async function run(program: string, args: string[]): Promise<string> {
  const [command, allArgs] = isRoot()
    ? ["runuser", ["-u", "postgres", "--", program, ...args]]
    : [program, args];
  const out = await new Deno.Command(command, { args: allArgs, stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${program} ${args.join(" ")} failed:\n${text}`);
  return text;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function start(): Promise<PostgresCluster> {
  const dir = await Deno.makeTempDir({ prefix: "strider-pg-" });
  const data = join(dir, "data");
  if (isRoot()) {
    const ids = await new Deno.Command("id", { args: ["-u", "postgres"] }).output();
    const uid = Number(new TextDecoder().decode(ids.stdout).trim());
    await Deno.chown(dir, uid, null);
  }
  const initdb = run(join(BIN, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C",
  ]);
  await initdb.catch(async (error) => {
    await Deno.remove(dir, { recursive: true });
    throw error;
  });
  // fsync off: the tests kill processes (queens), never the machine, and what PostgreSQL
  // committed survives a process's death without it. Production keeps fsync on.
  const start = (port: number) =>
    run(join(BIN, "pg_ctl"), [
      "-D",
      data,
      "-o",
      [
        `-p ${port}`,
        "-c listen_addresses=127.0.0.1",
        `-c unix_socket_directories=${dir}`,
        "-c max_connections=200",
        "-c fsync=off",
        "-c synchronous_commit=on",
        "-c full_page_writes=off",
      ].join(" "),
      "-l",
      join(dir, "log"),
      "-w",
      "start",
    ]);
  // The free port may be taken by another process before PostgreSQL binds it: try another.
  let port = 0;
  for (let attempt = 1;; attempt++) {
    port = freePort();
    try {
      await start(port);
      break;
    } catch (error) {
      if (attempt === 3) {
        await Deno.remove(dir, { recursive: true });
        throw error;
      }
    }
  }
  globalThis.addEventListener("unload", () => {
    const args = ["-D", data, "-m", "immediate", "stop"];
    const [command, allArgs] = isRoot()
      ? ["runuser", ["-u", "postgres", "--", join(BIN, "pg_ctl"), ...args]]
      : [join(BIN, "pg_ctl"), args];
    new Deno.Command(command, { args: allArgs, stdout: "null", stderr: "null" }).outputSync();
    Deno.removeSync(dir, { recursive: true });
  });
  let n = 0;
  return {
    port,
    async newDatabase() {
      const name = `strider_${Deno.pid}_${++n}`;
      await run(join(BIN, "createdb"), [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        name,
      ]);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
  };
}

/** The test file's cluster, started on first use. */
export function postgresCluster(): Promise<PostgresCluster> {
  return started ??= start();
}
