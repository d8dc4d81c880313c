/**
 * Several active queens on one PostgreSQL database (docs/ARCHITECTURE.md, "Several queens").
 * Every queen serves everything and schedules: a job has one owner at a time, the queen that
 * claimed it for one of its drones, until it ends. This is the `SharedQueue` of `QueenCore`:
 *
 * - claims: one queen at a time, queued jobs without an owner in queue order; the seed's rule
 *   picks over the whole fleet (the `drones` table) and a queen takes the jobs whose pick is one
 *   of its own drones, none of lower priority than one left for another queen (any capable drone
 *   of its own once a job has waited `STALE_MS`, in case what it read of the others was stale);
 * - the drone table: each queen writes its own drones' loads as they change;
 * - wake-ups by `NOTIFY` (a job queued, released or ended, a drone's load changed), a poll as
 *   the fallback;
 * - death: a queen holds its liveness lock for its life; the first survivor that finds it free
 *   adopts the dead queen's jobs, as a restarted queen takes over its own;
 * - a worker that reconnects to another queen: that queen fetches its job (handed over by a live
 *   owner, adopted from a dead one) and re-attaches it;
 * - cancel anywhere: the owner is told, and the wish is kept on the row for whoever owns it next;
 * - the fleet view (`Fleet`, queen/fleet.ts): the drone table read with each drone's queen, and
 *   drain or disconnect of another queen's drone asked of that queen.
 */
import type { Sql, TransactionSql } from "postgres";
import type { RecordedEvent } from "../../protocol/mod.ts";
import type { QueenCore, SharedQueue } from "../queen.ts";
import type { DroneView } from "../../protocol/mod.ts";
import type { DroneAction, Fleet, QueenRef } from "../fleet.ts";
import type { DroneLoad } from "../scheduler.ts";
import { canRun, needsOf, pickDrone, QUEUE_PER_SLOT, runnable, whyWaiting } from "../scheduler.ts";
import type { JobRecord } from "../store.ts";
import type { PostgresStore } from "./store.ts";
import { ENDED_CHANNEL, queenApplication, QUEUE_CHANNEL } from "./store.ts";
import { countFleet, droneRow, readFleet } from "./fleet.ts";

/**
 * Claims take turns, cluster-wide ("claim" in ASCII): each sees the jobs and drone loads the one
 * before committed, so the seed's rule picks over the fleet as one queen's would, priorities
 * included. A claim is a few milliseconds.
 */
const CLAIM_LOCK = 0x636c61696d;

/** Queens tell each other of cancels and hand-overs here: JSON `ControlMessage`s. */
export const CONTROL_CHANNEL = "strider_control";

/** A queued job older than this goes to any capable drone (the fleet view may be stale). */
export const STALE_MS = 2_000;
/** The fallback when notifications are missed: claims and the watch over other queens. */
const POLL_MS = 1_000;
/** Rows one claim reads at most. */
const CLAIM_ROWS = 200;
/** How old a read of the other queens' drones may be for a take-back. */
const FRESH_MS = 100;
/** Queued jobs the overview lists at most. */
const LISTED_MAX = 1000;
/** How long past a lease a queen asks a live owner for a job its worker brought here. */
const FETCH_MARGIN_MS = 15_000;
/** A queen whose heartbeat is older than its lease (at least this) is frozen: ended. */
const FROZEN_MIN_MS = 10_000;
/** The database's clock in ms: queens on different hosts compare heartbeats on one clock. */
const DB_NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

type ControlMessage =
  | { kind: "cancel"; to: string; job: string }
  | { kind: "cancel-build"; to: string; build: string }
  | { kind: "handover"; to: string; job: string; from: string }
  | { kind: "handed"; to: string; job: string }
  // Ids only: the drone as its queen knows it.
  | { kind: "drone"; to: string; drone: string; action: DroneAction };

/** A drone free to take one more job (a slot, or room in its own queue). */
function hasRoom(load: DroneLoad): boolean {
  if (!canRun(load, { plugins: [], labels: [] })) return false;
  return load.active < load.capacity * (load.queues === false ? 1 : 1 + QUEUE_PER_SLOT);
}

/** A queen's id and liveness lock key: random, so a restarted queen is a new one. */
export function newQueenIdentity(): { id: string; lock: bigint } {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const id = "q-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  // Positive and below 2^62: clear of the migration lock and of sign trouble.
  let lock = 0n;
  for (const b of bytes) lock = (lock << 8n) | BigInt(b);
  return { id, lock: (lock & ((1n << 62n) - 1n)) | 1n };
}

export class Cluster implements SharedQueue, Fleet {
  readonly id: string;
  #url = "";
  readonly #store: PostgresStore;
  readonly #sql: Sql;
  readonly #log: (message: string) => void;
  #core: QueenCore | undefined;
  #claiming = false;
  #claimAgain = false;
  #dirtyDrones = new Set<string>();
  #droneTimer: ReturnType<typeof setTimeout> | undefined;
  #droneWrites: Promise<void> = Promise.resolve();
  #poll: ReturnType<typeof setInterval> | undefined;
  #unlisten: (() => Promise<void>)[] = [];
  #handed = new Map<string, () => void>();
  #closed = false;
  /** The other queens' drones and the depth of the shared queue, as last read. */
  #others: DroneLoad[] = [];
  /** When `#others` was read (ms): a take-back trusts only a fresh read. */
  #othersAt = 0;
  #depth = 0;
  /** A job ended (on any queen): the builds this queen follows may need it. */
  onJobEnded: ((id: string) => void) | undefined;
  /** Running builds of a dead queen, now this one's to follow. */
  onBuildsAdopted: ((ids: string[]) => void) | undefined;
  /** Another queen asks this one to cancel a build it follows. */
  onBuildCancel: ((id: string) => void) | undefined;
  /** Another queen asks this one to drain or disconnect one of its drones. */
  onDroneAction: ((drone: string, action: DroneAction) => void) | undefined;

  readonly #leaseMs: number;
  readonly #queueTimeoutMs: number;

  constructor(
    id: string,
    store: PostgresStore,
    log: (message: string) => void,
    timing: { leaseMs?: number; queueTimeoutMs?: number } = {},
  ) {
    this.id = id;
    this.#leaseMs = timing.leaseMs ?? 30_000;
    this.#queueTimeoutMs = timing.queueTimeoutMs ?? 0;
    this.#store = store;
    this.#sql = store.sql;
    this.#log = log;
  }

  /**
   * Enters the queen in the `queens` table (its liveness lock is held already), and takes over
   * started jobs that no queen owns (left by a strider from before owners).
   */
  async join(lock: bigint, url: string): Promise<void> {
    this.#url = url;
    await this.#sql`INSERT INTO queens (id, url, lock, started, seen_at)
      VALUES (${this.id}, ${url}, ${lock.toString()}::bigint, ${Date.now()},
        ${this.#sql.unsafe(DB_NOW)})`;
    await this.#sql`UPDATE jobs SET owner = ${this.id}
      WHERE owner IS NULL AND status NOT IN ('done', 'queued')`;
    await this.#sql`UPDATE builds SET owner = ${this.id}
      WHERE owner IS NULL AND status = 'running'`;
  }

  /** Where other queens reach this one. */
  async announce(url: string): Promise<void> {
    this.#url = url;
    await this.#sql`UPDATE queens SET url = ${url} WHERE id = ${this.id}`;
  }

  /** Starts claiming, syncing the drone table and watching the other queens for `core`. */
  async start(core: QueenCore): Promise<void> {
    this.#core = core;
    core.drones.onChange = (id) => this.#droneChanged(id);
    const wake = () => {
      this.queued();
      void this.#watchQueens();
      void this.#refresh().then(() => this.#expireQueued()).catch((error) => {
        if (!this.#closed) this.#log(`--queue-timeout: ${(error as Error).message}`);
      });
    };
    // A drone-table write names its queen: that queen knows already.
    const queue = await this.#sql.listen(QUEUE_CHANNEL, (payload) => {
      if (payload !== this.id) this.queued();
    }, wake);
    const control = await this.#sql.listen(
      CONTROL_CHANNEL,
      (payload) =>
        void this.#onControl(payload).catch((error) => {
          if (!this.#closed) this.#log(`a message from another queen: ${error.message}`);
        }),
    );
    const ended = await this.#sql.listen(ENDED_CHANNEL, (id) => this.onJobEnded?.(id));
    this.#unlisten.push(queue.unlisten, control.unlisten, ended.unlisten);
    this.#poll = setInterval(wake, POLL_MS);
    wake();
  }

  /** Stops; the queen's jobs go to the survivors once its liveness lock is released. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#poll);
    clearTimeout(this.#droneTimer);
    if (this.#core) this.#core.drones.onChange = undefined;
    for (const unlisten of this.#unlisten) await unlisten().catch(() => {});
    await this.#droneWrites;
  }

  // --- SharedQueue ---

  queued(): void {
    if (this.#closed || !this.#core) return;
    if (this.#claiming) {
      this.#claimAgain = true;
      return;
    }
    this.#claiming = true;
    void (async () => {
      try {
        do {
          this.#claimAgain = false;
          // A full read that gave this queen jobs: more may be there for it.
          if (await this.#claim() === CLAIM_ROWS) this.#claimAgain = true;
        } while (this.#claimAgain && !this.#closed);
      } catch (error) {
        if (!this.#closed) this.#log(`claim: ${(error as Error).message}`);
      } finally {
        this.#claiming = false;
      }
    })();
  }

  release(ids: string[]): void {
    this.#store.release(ids).catch((error) =>
      this.#log(`releasing ${ids.length} jobs to the shared queue: ${(error as Error).message}`)
    );
  }

  fetch(id: string): void {
    void this.#fetch(id).catch((error) => {
      this.#log(`fetching job ${id} for its worker: ${(error as Error).message}`);
      this.#core?.resumeClaimed(id);
    });
  }

  async cancel(id: string): Promise<boolean> {
    const outcome = await this.#sql.begin(async (tx) => {
      const [row] = await tx`SELECT owner, status FROM jobs WHERE id = ${id} FOR UPDATE`;
      if (!row || row.status === "done") return "done";
      if (row.owner === null) {
        // Queued: this queen claims it to end it.
        await tx`UPDATE jobs SET owner = ${this.id} WHERE id = ${id}`;
        return "mine";
      }
      if (row.owner === this.id) return "mine";
      // Kept on the row: whoever owns it next (the owner may die first) cancels it.
      await tx`UPDATE jobs SET cancel_asked = TRUE WHERE id = ${id}`;
      const message: ControlMessage = { kind: "cancel", to: String(row.owner), job: id };
      await tx`SELECT pg_notify(${CONTROL_CHANNEL}, ${JSON.stringify(message)})`;
      return "asked";
    });
    if (outcome === "done") return false;
    if (outcome === "mine") {
      const core = this.#core!;
      if (!core.liveJob(id)) core.adopt(await this.#load([id]), false);
      core.cancel(id);
      core.dispatch();
    }
    return true;
  }

  describe(record: JobRecord): void {
    if (record.view.status !== "queued" || record.view.waiting) return;
    const why = whyWaiting(needsOf(record.spec), this.#fleet());
    record.view.waiting = record.requeued ? `${why} (re-queued: ${record.requeued})` : why;
  }

  async waiting(limit: number): Promise<JobRecord[]> {
    const rows = await this.#sql`SELECT id FROM jobs WHERE status = 'queued'
      ORDER BY priority DESC, created_at, position LIMIT ${Math.min(limit, LISTED_MAX)}`;
    const records = await this.#store.jobsById(rows.map((r) => String(r.id)));
    for (const record of records) this.describe(record);
    return records;
  }

  depth(): number {
    return this.#depth;
  }

  freeElsewhere(): DroneLoad[] {
    // An old read would send jobs back for slots long taken: only one just made counts.
    if (Date.now() - this.#othersAt > FRESH_MS) return [];
    return this.#others.filter((d) =>
      d.active < d.capacity && canRun(d, { plugins: [], labels: [] })
    )
      .map((d) => ({ ...d }));
  }

  /** Every drone of the cluster: this queen's as they are, the others' as last read. */
  #fleet(): DroneLoad[] {
    const own = [...this.#core?.drones.values() ?? []].filter((d) => d.info).map((d) => d.load());
    return [...own, ...this.#others];
  }

  async #refresh(): Promise<void> {
    try {
      const [others, [count]] = await Promise.all([
        this.#sql`SELECT d.load FROM drones d JOIN queens q ON q.id = d.queen
          WHERE d.queen <> ${this.id}`,
        this.#sql`SELECT count(*) AS n FROM jobs WHERE status = 'queued'`,
      ]);
      this.#others = others.map((r) => JSON.parse(String(r.load)));
      this.#othersAt = Date.now();
      this.#depth = Number(count.n);
    } catch (error) {
      if (!this.#closed) this.#log(`reading the fleet: ${(error as Error).message}`);
    }
  }

  /** Asks the queen following a running build to cancel it; false when none does. */
  async cancelBuild(id: string): Promise<boolean> {
    const [row] = await this.#sql`SELECT owner FROM builds WHERE id = ${id}
      AND status = 'running'`;
    // None, or this queen (which would have it in memory): nothing to ask.
    if (!row?.owner || row.owner === this.id) return false;
    const message: ControlMessage = { kind: "cancel-build", to: String(row.owner), build: id };
    await this.#sql`SELECT pg_notify(${CONTROL_CHANNEL}, ${JSON.stringify(message)})`;
    return true;
  }

  /**
   * `--queue-timeout` over the shared queue: a job queued past it that no drone of any queen can
   * run is claimed and ended `errored`, saying why (as one queen ends one in its own queue).
   */
  async #expireQueued(): Promise<void> {
    const limit = this.#queueTimeoutMs;
    if (!limit || this.#closed || !this.#core) return;
    const core = this.#core;
    const fleet = this.#fleet();
    const now = Date.now();
    const ended = await this.#sql.begin(async (tx) => {
      const rows = await tx`SELECT id, spec, queued_at FROM jobs
        WHERE status = 'queued' AND owner IS NULL AND queued_at < ${now - limit}
        ORDER BY position LIMIT ${CLAIM_ROWS} FOR UPDATE SKIP LOCKED`;
      const why = new Map<string, string>();
      for (const row of rows) {
        const id = String(row.id);
        const needs = needsOf(this.#store.openSpec(id, String(row.spec)));
        if (runnable(needs, fleet)) continue;
        const waited = Math.round((now - Number(row.queued_at)) / 1000);
        why.set(
          id,
          `${whyWaiting(needs, fleet)} for ${waited} s; ended by --queue-timeout ${
            Math.round(limit / 1000)
          }`,
        );
      }
      if (why.size) {
        await tx`UPDATE jobs SET owner = ${this.id} WHERE id = ANY(${[...why.keys()]})`;
      }
      return why;
    });
    if (!ended.size) return;
    core.adopt(await this.#load([...ended.keys()]), false);
    for (const [id, why] of ended) core.endQueued(id, why);
    core.dispatch();
  }

  // --- claims ---

  /** One claim; returns how many rows it read when it claimed any (else 0). */
  async #claim(): Promise<number> {
    const core = this.#core!;
    const own = [...core.drones.values()].filter((d) => d.info).map((d) => ({
      ...droneRow(d),
      id: `${this.id}/${d.id}`,
    }));
    if (!own.some(hasRoom)) {
      // Full here; but a job waiting at a drone of this queen may go to another's free slot.
      if (core.hasWaiting()) {
        await this.#refresh();
        core.dispatch();
      }
      return 0;
    }
    const ownIds = new Set(own.map((d) => d.id));
    const now = Date.now();
    let read = 0;
    const claimed = await this.#sql.begin(async (tx) => {
      // A queen frozen mid-claim must not stall every other's: they give up and come back.
      await tx`SELECT set_config('lock_timeout', '2s', true), pg_advisory_xact_lock(${CLAIM_LOCK})`;
      // Pipelined on the transaction's connection: one round trip.
      const [rows, others] = await Promise.all([
        tx`SELECT id, spec, serial_key, build_id, queued_at, priority FROM jobs
          WHERE status = 'queued' AND owner IS NULL
          ORDER BY priority DESC, created_at, position
          LIMIT ${CLAIM_ROWS} FOR UPDATE SKIP LOCKED`,
        tx`SELECT d.load FROM drones d JOIN queens q ON q.id = d.queen
          WHERE d.queen <> ${this.id}`,
      ]);
      read = rows.length;
      this.#others = others.map((r) => JSON.parse(String(r.load)));
      this.#othersAt = Date.now();
      if (!rows.length) return [];
      const fleet: DroneLoad[] = [...own, ...this.#others.map((load) => ({ ...load }))];
      // Per serialization key: the builds that hold it (or null: another queen is deciding).
      const branches = new Map<string, Set<string> | null>();
      const mine: string[] = [];
      /** The priority of the first job left for another queen: none below it goes first. */
      let leftAt: number | undefined;
      for (const row of rows) {
        // Nothing more can be this queen's once its drones are full.
        if (!own.some(hasRoom)) break;
        if (leftAt !== undefined && Number(row.priority) < leftAt) break;
        const id = String(row.id);
        const key = row.serial_key === null ? undefined : String(row.serial_key);
        const build = String(row.build_id ?? id);
        if (key !== undefined) {
          if (!branches.has(key)) branches.set(key, await this.#branchHolders(tx, key));
          const holders = branches.get(key);
          // Serialization is per build: the jobs of one build run side by side.
          if (holders === null || [...holders!].some((b) => b !== build)) continue;
        }
        const needs = needsOf(this.#store.openSpec(id, String(row.spec)));
        let target = pickDrone(needs, fleet);
        if (target && !ownIds.has(target.id) && now - Number(row.queued_at ?? 0) > STALE_MS) {
          target = pickDrone(needs, own) ?? target;
        }
        if (!target) continue;
        target.active++;
        if (key !== undefined) branches.get(key)!.add(build);
        if (ownIds.has(target.id)) mine.push(id);
        // Left for the queen whose drone the rule picks (it claims at once: it was woken too);
        // counted on that drone, and no job of lower priority goes out before it.
        else leftAt ??= Number(row.priority);
      }
      if (mine.length) {
        // The next claim, of any queen, sees these drones with what this one gave them.
        await Promise.all([
          tx`UPDATE jobs SET owner = ${this.id} WHERE id = ANY(${mine})`,
          tx`INSERT INTO drones (id, queen, load)
            SELECT i, ${this.id}, l FROM unnest(${own.map((d) => d.id)}::text[],
              ${own.map((d) => JSON.stringify(d))}::text[]) AS u(i, l)
            ON CONFLICT (id) DO UPDATE SET load = EXCLUDED.load`,
        ]);
      }
      return mine;
    });
    // A drone that left during the claim was written back by it: written again, it goes.
    for (const drone of own) {
      const id = drone.id.slice(this.id.length + 1);
      if (!core.drones.get(id)?.info) this.#droneChanged(id);
    }
    if (claimed.length) await this.#adopt(claimed);
    else if (core.hasWaiting()) core.dispatch();
    return claimed.length ? read : 0;
  }

  /**
   * The builds whose jobs hold a branch (owned and unfinished), under a transaction lock on the
   * branch so that two queens never both take one; null when another queen holds that lock.
   */
  async #branchHolders(tx: TransactionSql, key: string): Promise<Set<string> | null> {
    const [{ locked }] = await tx`SELECT pg_try_advisory_xact_lock(hashtextextended(${key}, 0))
      AS locked`;
    if (!locked) return null;
    const rows = await tx`SELECT DISTINCT COALESCE(build_id, id) AS build FROM jobs
      WHERE serial_key = ${key} AND owner IS NOT NULL AND status <> 'done'`;
    return new Set(rows.map((r) => String(r.build)));
  }

  /** Loads jobs this queen now owns into its core, and honours cancels asked meanwhile. */
  async #adopt(ids: string[]): Promise<void> {
    const core = this.#core!;
    const [jobs, cancels] = await Promise.all([
      this.#load(ids),
      this.#sql`SELECT id FROM jobs WHERE id = ANY(${ids}) AND cancel_asked`,
    ]);
    core.adopt(jobs, false);
    for (const row of cancels) core.cancel(String(row.id));
    core.dispatch();
  }

  /** The unfinished ones of `ids`, each with the events its saved view lags behind. */
  async #load(ids: string[]): Promise<[JobRecord, RecordedEvent[]][]> {
    const records = (await this.#store.jobsById(ids)).filter((r) => r.view.status !== "done");
    const lagging = await Promise.all(
      records.map((r) => r.lastN > r.viewN ? this.#store.events(r.id, r.viewN) : []),
    );
    return records.map((r, i) => [r, lagging[i]]);
  }

  // --- the drone table ---

  #droneChanged(id: string): void {
    this.#dirtyDrones.add(id);
    // A slot freed or a drone came: this queen may claim; the others learn of it by NOTIFY.
    this.#droneTimer ??= setTimeout(() => {
      this.#droneTimer = undefined;
      this.#droneWrites = this.#droneWrites.then(() => this.#writeDrones()).catch((error) => {
        if (!this.#closed) this.#log(`drone table: ${(error as Error).message}`);
      });
      this.queued();
    }, 5);
  }

  async #writeDrones(): Promise<void> {
    const core = this.#core!;
    const ids = [...this.#dirtyDrones];
    this.#dirtyDrones.clear();
    const rows: { id: string; load: string }[] = [];
    const gone: string[] = [];
    for (const id of ids) {
      const drone = core.drones.get(id);
      const key = `${this.id}/${id}`;
      if (drone?.info) {
        rows.push({ id: key, load: JSON.stringify({ ...droneRow(drone), id: key }) });
      } else gone.push(key);
    }
    await this.#sql.begin(async (tx) => {
      if (rows.length) {
        await tx`INSERT INTO drones (id, queen, load)
          SELECT i, ${this.id}, l FROM unnest(${rows.map((r) => r.id)}::text[],
            ${rows.map((r) => r.load)}::text[]) AS u(i, l)
          ON CONFLICT (id) DO UPDATE SET load = EXCLUDED.load`;
      }
      if (gone.length) await tx`DELETE FROM drones WHERE id = ANY(${gone})`;
      await tx`SELECT pg_notify(${QUEUE_CHANNEL}, ${this.id})`;
    });
  }

  // --- the fleet view ---

  get self(): QueenRef {
    return { id: this.id, url: this.#url };
  }

  /** How long a queen may go without a heartbeat before it counts as frozen (ended). */
  get #frozenMs(): number {
    return Math.max(this.#leaseMs, FROZEN_MIN_MS);
  }

  others(): Promise<DroneView[]> {
    return readFleet(this.#sql, this.id, this.#frozenMs, this.#log);
  }

  async other(id: string): Promise<DroneView | undefined> {
    const at = id.lastIndexOf("@");
    if (at <= 0) return undefined;
    const key = `${id.slice(at + 1)}/${id.slice(0, at)}`;
    const [drone] = await readFleet(this.#sql, this.id, this.#frozenMs, this.#log, key);
    return drone;
  }

  async relay(id: string, action: DroneAction): Promise<void> {
    const at = id.lastIndexOf("@");
    const message: ControlMessage = {
      kind: "drone",
      to: id.slice(at + 1),
      drone: id.slice(0, at),
      action,
    };
    await this.#sql`SELECT pg_notify(${CONTROL_CHANNEL}, ${JSON.stringify(message)})`;
  }

  count(): Promise<number> {
    return countFleet(this.#sql, this.#frozenMs);
  }

  // --- other queens ---

  #watching = false;

  /** Adopts the jobs of every other queen whose liveness lock is free (it died). */
  async #watchQueens(): Promise<void> {
    if (this.#watching || this.#closed) return;
    this.#watching = true;
    try {
      await this.#sql`UPDATE queens SET seen_at = ${this.#sql.unsafe(DB_NOW)}
        WHERE id = ${this.id}`;
      const rows = await this.#sql`SELECT id, ${this.#sql.unsafe(DB_NOW)} - seen_at AS silent
        FROM queens WHERE id <> ${this.id}`;
      const frozen = Math.max(this.#leaseMs, FROZEN_MIN_MS);
      for (const row of rows) {
        const id = String(row.id);
        if (Number(row.silent) > frozen) {
          // Alive to PostgreSQL (its lock held) but silent past a lease: frozen (SIGSTOP, a
          // hung host). Its connections end, which frees its lock; it stops if it wakes.
          this.#log(
            `queen ${id} silent for ${Math.round(Number(row.silent) / 1000)} s: ending ` +
              "its database connections",
          );
          await this.#sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name = ${queenApplication(id)}`;
        }
        await this.#adoptIfDead(id);
      }
    } catch (error) {
      if (!this.#closed) this.#log(`watching the other queens: ${(error as Error).message}`);
    } finally {
      this.#watching = false;
    }
  }

  /** If queen `id` is dead, takes its jobs (one survivor does: the row goes with them). */
  async #adoptIfDead(id: string): Promise<boolean> {
    const adopted = await this.#sql.begin(async (tx) => {
      const [queen] = await tx`SELECT lock FROM queens WHERE id = ${id} FOR UPDATE SKIP LOCKED`;
      if (!queen) return undefined;
      // Free exactly when the queen's session is gone; released again when this commits.
      const [{ free }] = await tx`SELECT pg_try_advisory_xact_lock(${String(queen.lock)}::bigint)
        AS free`;
      if (!free) return undefined;
      await tx`DELETE FROM queens WHERE id = ${id}`;
      await tx`DELETE FROM drones WHERE queen = ${id}`;
      const jobs = await tx`UPDATE jobs SET owner = ${this.id}
        WHERE owner = ${id} AND status <> 'done' RETURNING id`;
      const builds = await tx`UPDATE builds SET owner = ${this.id}
        WHERE owner = ${id} AND status = 'running' RETURNING id`;
      await tx`SELECT pg_notify(${QUEUE_CHANNEL}, '')`;
      return { jobs: jobs.map((j) => String(j.id)), builds: builds.map((b) => String(b.id)) };
    });
    if (adopted === undefined) return false;
    this.#log(`queen ${id} is gone: adopting its ${adopted.jobs.length} unfinished jobs`);
    if (adopted.jobs.length) await this.#adopt(adopted.jobs);
    if (adopted.builds.length) this.onBuildsAdopted?.(adopted.builds);
    return true;
  }

  /**
   * Brings job `id` here for the worker that claims it: adopted from a dead owner, handed over
   * by a live one; then the core re-attaches it (or refuses the claim if it cannot be had).
   */
  async #fetch(id: string): Promise<void> {
    const core = this.#core!;
    const deadline = Date.now() + Math.max(this.#leaseMs, FROZEN_MIN_MS) + FETCH_MARGIN_MS;
    let asked = false;
    while (!this.#closed && Date.now() < deadline) {
      const [row] = await this.#sql`SELECT owner, status FROM jobs WHERE id = ${id}`;
      if (!row || row.status === "done" || row.owner === null) break;
      const owner = String(row.owner);
      if (owner === this.id) {
        if (!core.liveJob(id)) core.adopt(await this.#load([id]), false);
        break;
      }
      if (await this.#adoptIfDead(owner)) continue;
      if (!asked) {
        asked = true;
        this.#log(`job ${id}: its worker is here; asking queen ${owner} to hand it over`);
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#handed.set(id, resolve);
      const message: ControlMessage = { kind: "handover", to: owner, job: id, from: this.id };
      await this.#sql`SELECT pg_notify(${CONTROL_CHANNEL}, ${JSON.stringify(message)})`;
      const timer = setTimeout(resolve, 500);
      await promise;
      clearTimeout(timer);
      this.#handed.delete(id);
    }
    core.resumeClaimed(id);
  }

  async #onControl(payload: string): Promise<void> {
    let message: ControlMessage;
    try {
      message = JSON.parse(payload);
    } catch {
      return;
    }
    if (message.to !== this.id || this.#closed) return;
    const core = this.#core!;
    if (message.kind === "cancel") {
      if (core.liveJob(message.job)) core.cancel(message.job);
    } else if (message.kind === "cancel-build") {
      this.onBuildCancel?.(message.build);
    } else if (message.kind === "drone") {
      const { drone, action } = message;
      if (typeof drone === "string" && (action === "drain" || action === "disconnect")) {
        this.#log(`drone ${drone}: ${action} asked by another queen`);
        this.onDroneAction?.(drone, action);
      }
    } else if (message.kind === "handed") {
      this.#handed.get(message.job)?.();
    } else if (message.kind === "handover") {
      if (!core.surrender(message.job)) return;
      // Everything this queen wrote of the job is committed before it changes hands.
      await this.#store.flushed();
      await this.#sql`UPDATE jobs SET owner = ${message.from}
        WHERE id = ${message.job} AND owner = ${this.id}`;
      const reply: ControlMessage = { kind: "handed", to: message.from, job: message.job };
      await this.#sql`SELECT pg_notify(${CONTROL_CHANNEL}, ${JSON.stringify(reply)})`;
      this.#log(`job ${message.job}: handed over to queen ${message.from}, where its worker is`);
    }
  }
}
