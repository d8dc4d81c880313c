/**
 * Where a queen keeps everything: the SQLite file under `--data` (the default), or a PostgreSQL
 * database shared by several queens (`--database`), each of which serves and schedules (see
 * docs/ARCHITECTURE.md, "Several queens").
 */
import { ArtifactStore } from "./artifacts/store.ts";
import { SqliteBuildStore } from "./builds/sqlite_store.ts";
import type { BuildStore } from "./builds/store.ts";
import { PostgresBuildStore } from "./postgres/builds.ts";
import { tolerateClosedSockets } from "./postgres/closed_sockets.ts";
import type { Artifacts } from "./artifacts/store.ts";
import { PostgresStatusRows, SqliteStatusRows } from "./forge_status/rows.ts";
import type { StatusRows } from "./forge_status/rows.ts";
import { PostgresArtifactStore } from "./postgres/artifacts.ts";
import { PostgresProjectStore } from "./postgres/projects.ts";
import { PostgresStore } from "./postgres/store.ts";
import { Cluster, newQueenIdentity } from "./postgres/cluster.ts";
import { holdLock } from "./postgres/liveness.ts";
import type { HeldLock } from "./postgres/liveness.ts";
import { ClusterBus } from "./postgres/bus.ts";
import { SqliteProjectStore } from "./projects/store.ts";
import type { ProjectStore } from "./projects/store.ts";
import { databaseKey } from "./postgres/rotation.ts";
import type { SecretKeyOptions } from "./secret_key.ts";
import { SqliteStore } from "./sqlite_store.ts";
import type { Store } from "./store.ts";
import { tokenFromDataDir } from "./tokens.ts";
import { StartupError } from "./errors.ts";

/** The stores a queen serves from. */
export interface Stores {
  store: Store;
  projects: ProjectStore;
  artifacts: Artifacts;
  statusRows: StatusRows;
  builds: BuildStore;
  /** The key of lease tokens: shared by every queen of a database. */
  leaseKey: string;
  /** With PostgreSQL: the queue and the fleet this queen shares with the others. */
  shared?: Cluster;
  /** With PostgreSQL: rejects when this queen lost its liveness lock and must stop serving. */
  lost?: Promise<never>;
  /** Tells the other queens where this one serves (PostgreSQL). */
  announce(url: string): Promise<void>;
  /** Lets the liveness lock go (after the store closed): the others adopt what is left. */
  release(): void;
  /** With PostgreSQL: what this queen hears of other queens' commits (LISTEN/NOTIFY). */
  bus?: ClusterBus;
}

export interface StoreOptions {
  data: string;
  /** How long a silent drone keeps its attempts: also how long a frozen queen keeps its jobs. */
  leaseMs: number;
  /** `--queue-timeout` in ms (0: none): applied to the shared queue too. */
  queueTimeoutMs: number;
  database?: string;
  /** Seconds a database statement may take (`--database-timeout`). */
  databaseTimeout?: number;
  keys: SecretKeyOptions;
  log: (message: string) => void;
}

/** A new random key for lease tokens. */
function newLeaseKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Opens the stores; with PostgreSQL, enters this queen among those serving the database. */
export async function openStores(options: StoreOptions): Promise<Stores> {
  const { log } = options;
  if (!options.database) {
    const local = new SqliteStore(options.data, options.keys);
    return {
      store: local,
      projects: new SqliteProjectStore(local.database, local.secretBox),
      artifacts: new ArtifactStore(local.database),
      statusRows: new SqliteStatusRows(local.database),
      builds: new SqliteBuildStore(local.database),
      // Lease tokens are derived from this key (0600 in the data folder), so that a restarted
      // queen still recognises the attempts its workers hold.
      leaseKey: await tokenFromDataDir(options.data, "lease-key"),
      announce: () => Promise.resolve(),
      release: () => {},
    };
  }
  tolerateClosedSockets(log);
  const connection = {
    url: options.database,
    statementSeconds: options.databaseTimeout,
  };
  const box = await databaseKey(options.data, options.keys, connection, log);
  // Every queen of the database schedules: it owns the jobs it claims (see cluster.ts), and
  // holds a lock for its life by which the others know when it died.
  const { id, lock } = newQueenIdentity();
  const pg = await PostgresStore.open({ ...connection, queen: id }, box);
  const bus = await ClusterBus.open(options.database, { self: () => pg.tag, log });
  let held: HeldLock;
  try {
    held = await holdLock(options.database, lock, id);
  } catch (error) {
    await pg.close();
    await bus.close();
    throw new StartupError(
      `--database: cannot take this queen's lock: ${(error as Error).message}`,
    );
  }
  const cluster = new Cluster(id, pg, log, {
    leaseMs: options.leaseMs,
    queueTimeoutMs: options.queueTimeoutMs,
  });
  await cluster.join(lock, "");
  log(`serving the PostgreSQL database with the other queens on it (this queen is ${id})`);
  return {
    store: pg,
    projects: new PostgresProjectStore(pg.sql, pg.secretBox),
    artifacts: await PostgresArtifactStore.open(pg.sql),
    statusRows: new PostgresStatusRows(pg.sql),
    builds: new PostgresBuildStore(pg.sql, id),
    // Shared by every queen of the database, so that a survivor recognises the attempts that
    // workers of a stopped queen hold.
    leaseKey: await pg.shared("lease-key", newLeaseKey),
    shared: cluster,
    // A commit that failed for good, or a lost liveness lock, stops the queen.
    lost: Promise.race([held.lost, pg.broken]),
    announce: (url) => cluster.announce(url),
    release: held.release,
    bus,
  };
}
