/**
 * Where a queen keeps everything: the SQLite file under `--data` (the default), or a PostgreSQL
 * database shared by several queens (`--database`), where it first waits for the lead and, while
 * another queen holds it, serves reads of jobs from the database and forwards every other
 * request to that one (see docs/ARCHITECTURE.md, "Several queens").
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
import { forwarder } from "./postgres/forward.ts";
import { PostgresProjectStore } from "./postgres/projects.ts";
import { PostgresStore } from "./postgres/store.ts";
import { Lead } from "./postgres/lead.ts";
import { ClusterBus } from "./postgres/bus.ts";
import { StandbyReads } from "./postgres/standby.ts";
import type { StandbyReadOptions } from "./postgres/standby.ts";
import { SqliteProjectStore } from "./projects/store.ts";
import type { ProjectStore } from "./projects/store.ts";
import { databaseKey } from "./postgres/rotation.ts";
import type { SecretKeyOptions } from "./secret_key.ts";
import { SqliteStore } from "./sqlite_store.ts";
import type { Store } from "./store.ts";
import { tokenFromDataDir } from "./tokens.ts";

/** The stores a queen serves from. */
export interface Stores {
  store: Store;
  projects: ProjectStore;
  artifacts: Artifacts;
  statusRows: StatusRows;
  builds: BuildStore;
  /** The key of lease tokens: shared by every queen of a database. */
  leaseKey: string;
  /** The port to serve on: a standby's forwarder may have taken port 0's place. */
  port: number;
  /** With PostgreSQL: rejects when this queen lost the lead and must stop serving. */
  lost?: Promise<never>;
  /**
   * A queen that stood by already listens (its forwarder): it keeps that server and hands it the
   * queen's own handler (`serve`), so there is no moment with nothing listening on its port.
   */
  server?: Deno.HttpServer<Deno.NetAddr>;
  serve(handler: (request: Request) => Response | Promise<Response>): void;
  /** Tells the other queens where this one serves (PostgreSQL). */
  announce(url: string): Promise<void>;
  /** Lets the lead go (after the store closed). */
  release(): void;
  /** With PostgreSQL: what this queen hears of other queens' commits (LISTEN/NOTIFY). */
  bus?: ClusterBus;
}

export interface StoreOptions {
  data: string;
  database?: string;
  /** Seconds a database statement may take (`--database-timeout`). */
  databaseTimeout?: number;
  keys: SecretKeyOptions;
  port: number;
  host: string;
  tls: { cert?: string; key?: string };
  log: (message: string) => void;
  /** With PostgreSQL: who may read, for the reads a standby serves itself. */
  reads?: StandbyReadOptions;
}

/** A new random key for lease tokens. */
function newLeaseKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Opens the stores; with PostgreSQL, resolves once this queen serves the database. */
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
      port: options.port,
      serve: () => {},
      announce: () => Promise.resolve(),
      release: () => {},
    };
  }
  tolerateClosedSockets(log);
  const connection = { url: options.database, statementSeconds: options.databaseTimeout };
  const box = await databaseKey(options.data, options.keys, connection, log);
  // Opened first, so that a wrong key or a newer schema stops the queen before it stands by.
  let pg = await PostgresStore.open(connection, box);
  let port = options.port;
  let forwarding: Deno.HttpServer<Deno.NetAddr> | undefined;
  let handler: (request: Request) => Response | Promise<Response> = () =>
    new Response(null, { status: 503 });
  const bus = await ClusterBus.open(options.database, { self: () => pg.tag, log });
  const reads = options.reads && new StandbyReads(() => pg, bus, options.reads, log);
  const cluster = new Lead(options.database, pg.sql);
  const lead = await cluster.take(async () => {
    // Until this queen takes over, it forwards everything to the one that serves.
    const { promise, resolve } = Promise.withResolvers<Deno.NetAddr>();
    forwarding = Deno.serve({
      ...options.tls,
      port,
      hostname: options.host,
      onListen: (addr) => resolve(addr as Deno.NetAddr),
    }, (request) => handler(request));
    const forward = forwarder((fresh) => cluster.leaderUrl(fresh), log);
    // Reads of jobs are served from the database here, live streams fed by the cluster bus.
    handler = (request) => reads?.handles(request) ? reads.fetch(request) : forward(request);
    port = (await promise).port;
    log(
      `standby: another queen serves this database; forwarding to it from port ${port}, ` +
        "taking over when it stops",
    );
  });
  if (forwarding) {
    // The pool of a queen that stood by may hold connections the server closed meanwhile (the
    // failover that gave it the lead), on which postgres.js can wait for ever: serve on a new one.
    const stale = pg;
    pg = await PostgresStore.open(connection, box);
    cluster.use(pg.sql);
    void stale.sql.end({ timeout: 0 }).catch(() => {});
  }
  log("serving the PostgreSQL database (this queen holds its lead)");
  return {
    store: pg,
    projects: new PostgresProjectStore(pg.sql, pg.secretBox),
    artifacts: await PostgresArtifactStore.open(pg.sql),
    statusRows: new PostgresStatusRows(pg.sql),
    builds: new PostgresBuildStore(pg.sql),
    // Shared by every queen of the database, so that a survivor recognises the attempts that
    // workers of a stopped queen hold.
    leaseKey: await pg.shared("lease-key", newLeaseKey),
    port,
    server: forwarding,
    serve: (own) => handler = own,
    // A commit that failed for good stops the queen as a lost lead does.
    lost: Promise.race([lead.lost, pg.broken]),
    announce: (url) => cluster.announce(url),
    release: lead.release,
    bus,
  };
}
