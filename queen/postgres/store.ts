/**
 * The server store: PostgreSQL, shared by every queen of a cluster (`--database postgres://...`).
 *
 * The same shape as `SqliteStore`: a job's events and log text are queued and committed in
 * batches a few milliseconds apart (`commit_batch.ts`), and the queen acknowledges a worker's
 * events only after PostgreSQL committed the transaction holding them (`afterCommit`). Each
 * batch also sends a `NOTIFY` per job it wrote, so that other queens following that job read
 * the new events from the database (see `onEvents`).
 *
 * Client: npm `postgres` (postgres.js). Chosen over `pg` (node-postgres) because it runs under
 * Deno without Node shims for sockets, pipelines queries on one connection, has LISTEN/NOTIFY
 * with automatic re-listen after a reconnect, and tagged-template queries that are always
 * parameterized. `pg` needs `pg-pool` and a separate client per LISTEN, and its Deno support
 * goes through the Node compatibility layer.
 */
import { Buffer } from "node:buffer";
import postgres from "postgres";
import type { Sql } from "postgres";
import type { JobSpec, JobView, RecordedEvent } from "../../protocol/mod.ts";
import type { SecretBox } from "../secret_box.ts";
import { eraseSecrets, jobContext, openText } from "../sealing.ts";
import { CommitBatcher } from "../commit_batch.ts";
import type { Batch } from "../commit_batch.ts";
import { decodeCursor, encodeCursor } from "../store.ts";
import type { JobFilter, JobPage, JobRecord, LogChunk, Retention, Store } from "../store.ts";
import { DatabaseUnavailableError, StartupError } from "../errors.ts";
import { branchKey, buildOf } from "../scheduler.ts";
import { migratePostgres } from "./schema.ts";
import { deadlinesOf, serverBounds, silentMs, watchedSocket, withDeadlines } from "./deadline.ts";
import { EVENTS_CHANNEL, notifyPayload } from "./bus.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** As in `sqlite_store.ts`: an output event points to its log chunk instead of a second copy. */
const LOG_REF = "@log";
/** The channel of commit notifications (see `bus.ts`). */
export { EVENTS_CHANNEL };
/** The channel that wakes the queens' claims: a job was queued or released, one ended, or a
 * drone's load changed. */
export const QUEUE_CHANNEL = "strider_queue";
/** The channel on which a batch tells which jobs it ended: payload `<id>` per job. */
export const ENDED_CHANNEL = "strider_ended";

/**
 * A batch wrote to a job this queen no longer owns (another adopted it while this one stalled):
 * the queen must stop, and acknowledges nothing of that batch.
 */
export class FencedError extends Error {}

interface StoredState {
  view: JobView;
  viewN: number;
  viewBytes: number;
  requeued?: string;
  cancelRequested?: boolean;
}

type Row = Record<string, unknown>;

/** Where the store connects and how many connections it may hold. */
export interface PostgresOptions {
  url: string;
  /** Connections in the pool (default 10). */
  max?: number;
  /**
   * The id of the queen using the store, when several queens share the database: it writes
   * only jobs it owns (see docs/ARCHITECTURE.md, "Several queens").
   */
  queen?: string;
  /**
   * Seconds a statement may take (`--database-timeout`, default 30): PostgreSQL cancels it, and
   * the client gives up on a connection that stays silent (see `deadline.ts`).
   */
  statementSeconds?: number;
  /** The connections' `application_name` (default `QUEEN_APPLICATION`). */
  application?: string;
}

/** The `application_name` of every queen's connections. */
export const QUEEN_APPLICATION = "strider-queen";

/** The `application_name` of queen `id`'s connections: `QUEEN_APPLICATION`, then its id. */
export function queenApplication(id: string): string {
  return `${QUEEN_APPLICATION}:${id}`;
}
/** The advisory lock of a change of key (`rotation.ts`); checking the key takes it shared. */
export const ROTATION_LOCK = 0x726f74617465;

/** Opens a connection pool, with a message that says what to fix when it cannot. */
export async function connectPostgres(options: PostgresOptions): Promise<Sql> {
  const deadlines = deadlinesOf(options.statementSeconds);
  // BIGINT columns (times, sizes) come back as text and are read with Number(): exact up to
  // 2^53, far beyond any time or size stored.
  const settings = {
    max: options.max ?? 10,
    onnotice: () => {},
    connect_timeout: Math.min(10, Math.ceil(deadlines.statementMs / 1000)),
    // Other queens' connections are told apart from foreign ones by this name (rotation).
    connection: {
      // A queen's connections carry its id, so that the others can end them all if it freezes.
      application_name: options.queen
        ? queenApplication(options.queen)
        : options.application ?? QUEEN_APPLICATION,
      ...serverBounds(deadlines),
    },
    // Documented by postgres.js, missing from its types.
    socket: watchedSocket(silentMs(deadlines)),
  };
  const sql = withDeadlines(postgres(options.url, settings as postgres.Options<never>), deadlines);
  try {
    await sql`SELECT 1`;
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => {});
    const where = new URL(options.url);
    throw new StartupError(
      `--database: cannot reach PostgreSQL at ${where.hostname}:${where.port || 5432}` +
        `${where.pathname}: ${(error as Error).message}`,
    );
  }
  return sql;
}

/** The PostgreSQL store. Open with `PostgresStore.open`. */
export class PostgresStore implements Store {
  readonly #sql: Sql;
  readonly #box: SecretBox;
  readonly #batch = new CommitBatcher((batch) => this.#commit(batch), {
    onError: (error) => this.#breakWith(error),
  });
  readonly #broken = Promise.withResolvers<never>();
  #brokenWith: Error | undefined;
  readonly #listeners = new Set<(id: string) => void>();
  #unlisten: (() => Promise<void>) | undefined;
  #closed = false;

  /** Names this store in its notifications, so that its queen knows its own commits. */
  readonly tag = crypto.randomUUID().slice(0, 8);

  /** Where the database is, for connections of their own (a queen's liveness lock). */
  readonly url: string;
  /** The owner id this store writes as; undefined: a store of its own (tests, tools). */
  readonly queen: string | undefined;

  /** How long a read waits for the queued writes it must see (a commit being retried). */
  readonly #flushWaitMs: number;

  private constructor(
    sql: Sql,
    box: SecretBox,
    url: string,
    flushWaitMs: number,
    queen?: string,
  ) {
    this.url = url;
    this.#flushWaitMs = flushWaitMs;
    this.queen = queen;
    this.#sql = sql;
    this.#box = box;
  }

  /**
   * Connects, migrates (one queen at a time), checks that this queen seals with the key the
   * others use, and listens for other queens' events.
   */
  static async open(options: PostgresOptions, box: SecretBox): Promise<PostgresStore> {
    const sql = await connectPostgres(options);
    try {
      await migratePostgres(sql);
      await checkKey(sql, box);
      const { statementMs } = deadlinesOf(options.statementSeconds);
      const store = new PostgresStore(sql, box, options.url, statementMs + 5_000, options.queen);
      const { unlisten } = await sql.listen(EVENTS_CHANNEL, (payload) => {
        const id = payload.split(" ")[0];
        for (const listener of store.#listeners) listener(id);
      });
      store.#unlisten = unlisten;
      return store;
    } catch (error) {
      await sql.end({ timeout: 0 }).catch(() => {});
      throw error;
    }
  }

  /**
   * Rejects when a commit failed after every retry: the queen must stop serving, as what it
   * holds in memory is no longer what the database holds. Nothing of that batch was
   * acknowledged, so workers send it again to the queen that takes over.
   */
  get broken(): Promise<never> {
    return this.#broken.promise;
  }

  #breakWith(error: unknown): void {
    if (this.#brokenWith) return;
    this.#brokenWith = new Error(
      `could not commit to PostgreSQL after ${COMMIT_TRIES} tries: ${(error as Error).message}`,
    );
    this.#broken.reject(this.#brokenWith);
    this.#broken.promise.catch(() => {});
  }

  /** The connection pool, for stores that keep their own tables in the same database. */
  get sql(): Sql {
    return this.#sql;
  }

  /** What seals secrets in this database. */
  get secretBox(): SecretBox {
    return this.#box;
  }

  /** Calls `listener` with a job's id whenever any queen committed events of it. */
  onEvents(listener: (id: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A value every queen of the database shares, made once by the first that asks (`make`):
   * stored sealed, so that it is as private as the secrets.
   */
  async shared(key: string, make: () => string): Promise<string> {
    const context = `meta:${key}`;
    await this.#sql`INSERT INTO strider_meta (key, value)
      VALUES (${key}, ${this.#box.seal(make(), context)}) ON CONFLICT (key) DO NOTHING`;
    const [row] = await this.#sql`SELECT value FROM strider_meta WHERE key = ${key}`;
    return this.#box.open(String(row.value), context);
  }

  async createJob(record: JobRecord): Promise<void> {
    const { spec, view } = record;
    const created = Date.parse(view.createdAt);
    try {
      // Queued without an owner, and the queens woken to claim it. (The branch key as JSON:
      // TEXT cannot hold its NUL.)
      await this.#sql`WITH added AS (INSERT INTO jobs (id, created_at, status, result, repo,
          branch, spec, state, priority, serial_key, build_id, queued_at)
        VALUES (${record.id}, ${created}, ${view.status}, ${view.result},
          ${spec.repo.url}, ${"branch" in spec.ref ? spec.ref.branch : null},
          ${this.#sealSpec(record.id, spec)}, ${JSON.stringify(stateOf(record))},
          ${spec.priority ?? 0}, ${spec.serialize ? JSON.stringify(branchKey(spec)) : null},
          ${buildOf(spec) ?? null}, ${created}) RETURNING id)
        SELECT pg_notify(${QUEUE_CHANNEL}, id) FROM added`;
    } catch (error) {
      if ((error as { code?: string }).code === "23505") {
        throw new RangeError(`Job id '${record.id}' is already taken`);
      }
      throw error;
    }
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    // Read your writes: a state still queued is written first.
    if (this.#batch.isDirty(id)) await this.#flushed();
    const rows = await this.#sql`SELECT * FROM jobs WHERE id = ${id}`;
    return (await this.#loadAll(rows))[0];
  }

  async listJobs(filter: JobFilter): Promise<JobPage> {
    await this.#flushed();
    const sql = this.#sql;
    const where = [sql`TRUE`];
    if (filter.status) where.push(sql`status = ${filter.status}`);
    if (filter.result) where.push(sql`result = ${filter.result}`);
    if (filter.repo) where.push(sql`repo = ${filter.repo}`);
    if (filter.branch) where.push(sql`branch = ${filter.branch}`);
    if (filter.since) where.push(sql`created_at >= ${filter.since}`);
    if (filter.cursor) where.push(sql`position < ${decodeCursor(filter.cursor)}`);
    const condition = where.reduce((all, part) => sql`${all} AND ${part}`);
    const rows = await sql`SELECT * FROM jobs WHERE ${condition}
      ORDER BY position DESC LIMIT ${filter.limit + 1}`;
    const page = rows.slice(0, filter.limit);
    const next = rows.length > filter.limit
      ? encodeCursor(Number(page[page.length - 1].position))
      : null;
    return { records: await this.#loadAll(page), next };
  }

  async unfinishedJobs(): Promise<JobRecord[]> {
    await this.#flushed();
    // A queen of a cluster schedules the jobs it owns; the others are claimed or adopted.
    const rows = this.queen
      ? await this.#sql`SELECT * FROM jobs WHERE status != 'done' AND owner = ${this.queen}
        ORDER BY position`
      : await this.#sql`SELECT * FROM jobs WHERE status != 'done' ORDER BY position`;
    return await this.#loadAll(rows);
  }

  /** The records of the given jobs (in queue order), as `unfinishedJobs` loads them. */
  async jobsById(ids: readonly string[]): Promise<JobRecord[]> {
    if (!ids.length) return [];
    const rows = await this.#sql`SELECT * FROM jobs WHERE id = ANY(${ids as string[]})
      ORDER BY priority DESC, created_at, position`;
    return await this.#loadAll(rows);
  }

  /**
   * Gives queued jobs this queen owns back to the shared queue (it forgot them): once what it
   * wrote of them is committed, they lose their owner and the queens are woken to claim them.
   */
  async release(ids: readonly string[]): Promise<void> {
    if (!ids.length || !this.queen) return;
    await this.#batch.flush(true);
    await retried(() =>
      this.#sql`WITH freed AS (UPDATE jobs SET owner = NULL, queued_at = ${Date.now()}
          WHERE id = ANY(${ids as string[]}) AND owner = ${this.queen!} AND status = 'queued'
          RETURNING id)
        SELECT pg_notify(${QUEUE_CHANNEL}, id) FROM freed`
    );
  }

  /** Resolves once everything queued so far is committed. */
  flushed(): Promise<void> {
    return Promise.resolve(this.#batch.flush(true));
  }

  appendEvent(id: string, event: RecordedEvent, log?: LogChunk): void {
    this.#batch.append({ id, event, log });
  }

  async events(id: string, after = 0, limit?: number): Promise<RecordedEvent[]> {
    // The text as base64, not bytea's hex: a third of the bytes on the wire and in memory.
    const rows = await this.#sql`SELECT e.n, e.at, e.data, encode(l.text, 'base64') AS text
      FROM events e
      LEFT JOIN log_chunks l ON l.job_id = e.job_id
        AND e.data LIKE ${`%"${LOG_REF}":%`}
        AND l.start = (e.data::json ->> ${LOG_REF})::bigint
      WHERE e.job_id = ${id} AND e.n > ${after} ORDER BY e.n
      ${limit === undefined ? this.#sql`` : this.#sql`LIMIT ${limit}`}`;
    const stored = rows.map((row) => {
      const data = JSON.parse(String(row.data));
      if (row.text !== null && LOG_REF in data) {
        delete data[LOG_REF];
        data.text = decoder.decode(Buffer.from(String(row.text), "base64"));
      }
      return { n: Number(row.n), at: Number(row.at), data };
    }) as RecordedEvent[];
    return this.#batch.withPending(id, stored, after, limit);
  }

  /** The last committed event number of each of the jobs that have events. */
  async heads(ids: string[]): Promise<Map<string, number>> {
    const rows = await this.#sql`SELECT job_id, MAX(n) AS n FROM events
      WHERE job_id = ANY(${ids}) GROUP BY job_id`;
    return new Map(rows.map((row) => [String(row.job_id), Number(row.n)]));
  }

  /** The job's last committed event number (0: none, or no such job). */
  async head(id: string): Promise<number> {
    const [row] = await this.#sql`SELECT MAX(n) AS n FROM events WHERE job_id = ${id}`;
    return Number(row?.n ?? 0);
  }

  async readLog(id: string, start: number, end: number): Promise<Uint8Array> {
    const out = new Uint8Array(Math.max(0, end - start));
    const place = (chunkStart: number, bytes: Uint8Array) => {
      const from = Math.max(start, chunkStart);
      const to = Math.min(end, chunkStart + bytes.length);
      if (from < to) out.set(bytes.subarray(from - chunkStart, to - chunkStart), from - start);
    };
    // Taken before the query: a batch committed meanwhile is then in the rows.
    const pending = this.#batch.pending(id);
    const rows = await this.#sql`SELECT start, text FROM log_chunks
      WHERE job_id = ${id} AND start < ${end} AND start + bytes > ${start} ORDER BY start`;
    for (const row of rows) place(Number(row.start), row.text as Uint8Array);
    for (const { log } of pending) if (log) place(log.start, encoder.encode(log.text));
    return out;
  }

  saveJob(record: JobRecord): void {
    this.#batch.save(record);
  }

  async deleteJob(id: string): Promise<boolean> {
    await this.#flushed();
    const rows = await this.#sql`DELETE FROM jobs WHERE id = ${id} AND status = 'done'
      RETURNING id`;
    if (rows.length) this.#batch.forget(id);
    return rows.length > 0;
  }

  async prune(retention: Retention, now: number): Promise<number> {
    await this.#flushed();
    const doomed = new Set<string>();
    if (retention.keepJobs !== undefined) {
      const rows = await this.#sql`SELECT id FROM jobs WHERE status = 'done'
        ORDER BY position DESC OFFSET ${retention.keepJobs}`;
      for (const row of rows) doomed.add(String(row.id));
    }
    if (retention.keepDays !== undefined) {
      const rows = await this.#sql`SELECT id FROM jobs WHERE status = 'done'
        AND COALESCE(finished_at, created_at) < ${now - retention.keepDays * 86_400_000}`;
      for (const row of rows) doomed.add(String(row.id));
    }
    let removed = 0;
    for (const id of doomed) if (await this.deleteJob(id)) removed++;
    return removed;
  }

  afterCommit(callback: () => void): void {
    this.#batch.afterCommit(callback);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A store that could not commit does not try again on its way out.
    if (!this.#brokenWith) {
      await Promise.resolve(this.#batch.close()).catch((error) => this.#breakWith(error));
    }
    await this.#unlisten?.().catch(() => {});
    await this.#sql.end({ timeout: 5 });
  }

  /** A job's spec from its sealed column. */
  openSpec(id: string, sealed: string): JobSpec {
    return JSON.parse(openText(this.#box, sealed, jobContext(id))) as JobSpec;
  }

  /**
   * Commits what is queued before a read that must see it. While the database does not answer,
   * the commit is retried for longer than a request should wait: the read fails after the
   * statement bound instead, and the commit goes on.
   */
  async #flushed(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new DatabaseUnavailableError(
            `the database has not committed for ${Math.round(this.#flushWaitMs / 1000)} s; ` +
              "try again once it answers",
          ),
        );
      }, this.#flushWaitMs);
    });
    try {
      await Promise.race([this.#batch.flush(true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  #sealSpec(id: string, spec: JobSpec): string {
    return this.#box.seal(JSON.stringify(spec), jobContext(id));
  }

  /**
   * Writes one batch in one transaction, then tells the other queens which jobs got events.
   * Everything is serialized before the first `await`: the records keep changing.
   */
  #commit({ events, states }: Batch): Promise<void> {
    const eventRows = events.map(({ id, event }) => {
      const { data } = event;
      return {
        id,
        n: event.n,
        at: event.at,
        attempt: data.attempt,
        seq: "seq" in data ? data.seq : 0,
      };
    });
    const eventData = events.map(({ event, log }) => {
      const { data } = event;
      const stored = log && "text" in data && data.text === log.text
        ? { ...data, text: undefined, [LOG_REF]: log.start }
        : data;
      return JSON.stringify(stored);
    });
    // Log text travels as base64 (a TEXT parameter cannot hold NUL) and is stored as bytes.
    const logs = events.filter((e) => e.log).map(({ id, log }) => ({
      id,
      start: log!.start,
      bytes: log!.bytes,
      text: Buffer.from(log!.text, "utf8").toString("base64"),
    }));
    const stateRows = states.map((record) => {
      const { view } = record;
      return {
        id: record.id,
        status: view.status,
        result: view.result,
        finishedAt: view.finishedAt ? Date.parse(view.finishedAt) : null,
        state: JSON.stringify(stateOf(record)),
        // Final: the job never runs again, so its row forgets its secrets and credentials.
        spec: view.status === "done" ? this.#sealSpec(record.id, eraseSecrets(record.spec)) : null,
      };
    });
    const touched = [...new Set(events.map((e) => e.id))];
    const written = [...new Set([...touched, ...stateRows.map((r) => r.id)])];
    const ended = stateRows.filter((r) => r.status === "done").map((r) => r.id);
    const queen = this.queen;
    // One notification per job written: its last event number (0: its state alone changed).
    const lastN = new Map<string, number>(states.map((record) => [record.id, 0]));
    for (const { id, event } of events) lastN.set(id, Math.max(lastN.get(id) ?? 0, event.n));
    const notes = [...lastN].map(([id, n]) => notifyPayload(id, n, this.tag));
    const write = () =>
      this.#sql.begin(async (tx) => {
        if (queen && written.length) {
          // The fence: a queen writes only the jobs it owns, the rows locked against a change
          // of owner until this commits.
          const foreign = await tx`SELECT id FROM jobs WHERE id = ANY(${written})
            AND owner IS DISTINCT FROM ${queen} FOR SHARE`;
          if (foreign.length) {
            throw new FencedError(
              `job ${foreign[0].id} is owned by another queen now (this one stalled past its ` +
                "liveness lock): stopping without writing to it",
            );
          }
        }
        if (eventRows.length) {
          await tx`INSERT INTO events (job_id, n, at, attempt, seq, data)
          SELECT * FROM unnest(${eventRows.map((e) => e.id)}::text[],
            ${eventRows.map((e) => e.n)}::int[], ${eventRows.map((e) => e.at)}::bigint[],
            ${eventRows.map((e) => e.attempt)}::int[], ${eventRows.map((e) => e.seq)}::int[],
            ${eventData}::text[])
          ON CONFLICT DO NOTHING`;
        }
        // One statement per kind of row, whatever the batch holds: a commit costs a few round
        // trips, not one per event.
        if (logs.length) {
          await tx`INSERT INTO log_chunks (job_id, start, bytes, text)
          SELECT j, s, b, decode(t, 'base64') FROM unnest(${logs.map((l) => l.id)}::text[],
            ${logs.map((l) => l.start)}::bigint[], ${logs.map((l) => l.bytes)}::int[],
            ${logs.map((l) => l.text)}::text[]) AS u(j, s, b, t)
          ON CONFLICT DO NOTHING`;
        }
        if (stateRows.length) {
          await tx`UPDATE jobs SET status = u.status, result = u.result,
            finished_at = u.finished_at, state = u.state, spec = COALESCE(u.spec, jobs.spec)
          FROM unnest(${stateRows.map((r) => r.id)}::text[],
            ${stateRows.map((r) => r.status)}::text[], ${stateRows.map((r) => r.result)}::text[],
            ${stateRows.map((r) => r.finishedAt)}::bigint[],
            ${stateRows.map((r) => r.state)}::text[], ${stateRows.map((r) => r.spec)}::text[])
            AS u(id, status, result, finished_at, state, spec)
          WHERE jobs.id = u.id`;
        }
        // Delivered by PostgreSQL only once this transaction commits.
        if (notes.length) {
          await tx`SELECT pg_notify(${EVENTS_CHANNEL}, p) FROM unnest(${notes}::text[]) AS p`;
        }
        // A job that ended frees a slot, and maybe its branch: the queens claim again; and the
        // queen following its build learns of it.
        if (ended.length) {
          await tx`SELECT pg_notify(${QUEUE_CHANNEL}, ''), pg_notify(${ENDED_CHANNEL}, id)
            FROM unnest(${ended}::text[]) AS id`;
        }
      });
    return retried(write).catch((error) => {
      this.#breakWith(error);
      throw error;
    });
  }

  /** Records from their rows, with positions taken from the events and log in three queries. */
  async #loadAll(rows: readonly Row[]): Promise<JobRecord[]> {
    if (!rows.length) return [];
    const ids = rows.map((row) => String(row.id));
    const [lastNs, seqs, logs] = await Promise.all([
      this.#sql`SELECT job_id, MAX(n) AS n FROM events WHERE job_id = ANY(${ids})
        GROUP BY job_id`,
      this.#sql`SELECT job_id, attempt, MAX(seq) AS seq FROM events WHERE job_id = ANY(${ids})
        GROUP BY job_id, attempt`,
      this.#sql`SELECT DISTINCT ON (job_id) job_id, start, bytes,
          get_byte(text, length(text) - 1) = 10 AS newline
        FROM log_chunks WHERE job_id = ANY(${ids}) AND bytes > 0
        ORDER BY job_id, start DESC`,
    ]);
    const lastN = new Map(lastNs.map((r) => [String(r.job_id), Number(r.n)]));
    const lastLog = new Map(logs.map((r) => [String(r.job_id), r]));
    const lastSeq = new Map<string, Record<number, number>>();
    for (const r of seqs) {
      const id = String(r.job_id);
      if (!lastSeq.has(id)) lastSeq.set(id, {});
      lastSeq.get(id)![Number(r.attempt)] = Number(r.seq);
    }
    return rows.map((row) => {
      const id = String(row.id);
      const state = JSON.parse(String(row.state)) as StoredState;
      const log = lastLog.get(id);
      return {
        id,
        spec: JSON.parse(openText(this.#box, String(row.spec), jobContext(id))) as JobSpec,
        view: state.view,
        viewN: state.viewN,
        lastSeq: lastSeq.get(id) ?? {},
        lastN: Math.max(state.viewN, lastN.get(id) ?? 0),
        logBytes: log ? Number(log.start) + Number(log.bytes) : 0,
        logEndsWithNewline: log ? Boolean(log.newline) : true,
        logAttempt: state.view.attempt,
        viewBytes: state.viewBytes,
        requeued: state.requeued,
        cancelRequested: state.cancelRequested,
      };
    });
  }
}

/** How often a batch's transaction is tried (each bounded by the statement deadline). */
const COMMIT_TRIES = 6;

/**
 * Runs a batch's transaction again when it fails (a dropped connection, a database failing
 * over): the rows are the same, inserts skip what a lost commit did write, and nothing was
 * acknowledged. After the last try the error is thrown, and the queen stops rather than serve
 * what it cannot keep.
 */
async function retried(write: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await write();
      return;
    } catch (error) {
      if (attempt === COMMIT_TRIES || error instanceof FencedError) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
}

function stateOf(record: JobRecord): StoredState {
  return {
    view: record.view,
    viewN: record.viewN,
    viewBytes: record.viewBytes,
    ...(record.requeued ? { requeued: record.requeued } : {}),
    ...(record.cancelRequested ? { cancelRequested: true } : {}),
  };
}

/**
 * Every queen of a database must seal with the same key (each opens what the others sealed):
 * the first records its key's id, and a queen with another key refuses to start.
 */
async function checkKey(sql: Sql, box: SecretBox): Promise<void> {
  await sql.begin(async (tx) => {
    // Not while a queen re-seals the database: after it, the key id is the new one.
    await tx`SELECT pg_advisory_xact_lock_shared(${ROTATION_LOCK})`;
    await tx`INSERT INTO strider_meta (key, value) VALUES ('key-id', ${box.keyId})
      ON CONFLICT (key) DO NOTHING`;
    const [row] = await tx`SELECT value FROM strider_meta WHERE key = 'key-id'`;
    const sealedWith = String(row.value);
    if (sealedWith === box.keyId) return;
    throw new StartupError(
      box.keyIds.includes(sealedWith)
        ? `the database is sealed with key ${sealedWith}, which this queen has as its old key: ` +
          "start it once with --rotate-secret-key to re-seal everything with the new one"
        : `this queen's secret key (${box.keyId}) is not the one the database is sealed with ` +
          `(${sealedWith}): give every queen of the cluster the same STRIDER_SECRET_KEY ` +
          "(after a --rotate-secret-key, the new one)",
    );
  });
}
