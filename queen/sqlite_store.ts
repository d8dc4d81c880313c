/**
 * The embedded store: SQLite (node:sqlite) in WAL mode under the queen's `--data` folder.
 *
 * Events and log text are written in small transactions a few milliseconds apart; the queen
 * acknowledges a worker's events only after the transaction holding them committed
 * (`afterCommit`), so an acknowledged line survives `kill -9`. The store keeps no jobs of its
 * own: what is pending is a write queue (events, log chunks, records to save), and reads see it.
 * SQL runs synchronously (node:sqlite); the `Store` interface is asynchronous for server stores.
 */
import { DatabaseSync } from "node:sqlite";
import type { StatementSync } from "node:sqlite";
import { join } from "node:path";
import type { JobSpec, JobView, RecordedEvent } from "../protocol/mod.ts";
import { createPrivateFile, secureDataDir } from "./data_dir.ts";
import type { SecretBox } from "./secret_box.ts";
import { forgetOldKeyFile, openSecretBox } from "./secret_key.ts";
import type { SecretKeyOptions } from "./secret_key.ts";
import { eraseSecrets, jobContext, openText, resealAll } from "./sealing.ts";
import { migrate } from "./sqlite_schema.ts";
import { CommitBatcher } from "./commit_batch.ts";
import { release, releaseWhole } from "./buffers.ts";
import {
  LOG_BLOCK_BYTES,
  PackedLogReader,
  packLog,
  packText,
  readPacked,
  unpackText,
} from "./log_blocks.ts";
import type { Batch } from "./commit_batch.ts";
import { decodeCursor, encodeCursor } from "./store.ts";
import type {
  CommitOptions,
  JobFilter,
  JobPage,
  JobRecord,
  LogChunk,
  Retention,
  Store,
} from "./store.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/**
 * An output event's text is the log chunk recorded with it, byte for byte: the event's row keeps
 * the chunk's start under this key instead of a second copy of the text, which `events()` joins
 * back in. (Rows written before keep their text, and read as they are.)
 */
const LOG_REF = "@log";

/** The parts of a record kept as JSON in the `state` column. */
interface StoredState {
  view: JobView;
  /** The last event number folded into `view`. */
  viewN: number;
  viewBytes: number;
  requeued?: string;
  cancelRequested?: boolean;
}

/**
 * Packing yields to live output: a block is compressed once no output was appended for
 * `PACK_QUIET_MS`, or after `PACK_WAIT_MS` at the latest (a queen busy all day still packs,
 * slowly). Compressing competes for the same cores as the jobs streaming their logs.
 */
const PACK_QUIET_MS = 200;
const PACK_WAIT_MS = 5_000;

/** Thrown to stop packing a log whose job was deleted, or when the store closes. */
const GONE = Symbol("gone");

type Row = Record<string, string | number | null | Uint8Array>;

/** Reused for every chunk written (SQLite copies what it binds). */
let scratch = new Uint8Array(256 * 1024);

/**
 * `text`'s UTF-8 bytes, in a buffer reused by the next call. A fresh array per chunk is memory
 * outside V8's heap that its garbage collector frees late: 200 MB of output written so grew the
 * process's malloc heap by ~130 MB, never returned; encoded into one buffer, by nothing.
 */
function utf8View(text: string): Uint8Array {
  if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3);
  return scratch.subarray(0, encoder.encodeInto(text, scratch).written);
}

/** A log chunk's bytes: stored as a BLOB, or as TEXT by an older strider. */
function bytesOf(value: Row[string]): Uint8Array {
  return value instanceof Uint8Array ? value : encoder.encode(String(value ?? ""));
}

function textOf(value: Row[string]): string {
  return value instanceof Uint8Array ? new TextDecoder().decode(value) : String(value ?? "");
}

/** The SQLite store. */
export class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  readonly #batch = new CommitBatcher((batch) => this.#commit(batch));
  readonly #sql: Record<string, StatementSync>;
  readonly #box: SecretBox;
  /** Finished jobs whose logs wait to be compressed (`#packNext`), oldest first. */
  readonly #packQueue: string[] = [];
  #packing: Promise<void> | undefined;
  #closed = false;
  /** When output was last appended (`performance.now()`), for packing to yield to it. */
  #lastAppend = -Infinity;

  /**
   * Opens (creating when needed) `strider.db` in `dataDir`, applies pending migrations and seals
   * with the current secret key whatever is not sealed with it yet (see `sealing.ts`). The folder
   * is made 0700 and its files 0600 first.
   */
  constructor(dataDir: string, options: SecretKeyOptions = {}) {
    secureDataDir(dataDir);
    this.#box = openSecretBox(dataDir, options);
    const file = join(dataDir, "strider.db");
    // SQLite gives the -wal and -shm files the database's own mode.
    createPrivateFile(file);
    this.#db = new DatabaseSync(file);
    // A new database gets 32 KiB pages (SQLite's default is 4 KiB): logs are mostly 64 KiB
    // chunks, and every page is one WAL write and one more at the checkpoint; 8× fewer pages
    // made log writes ~2× faster here (BENCHMARKS.md, "Log throughput"). Set before the first
    // write; an existing file keeps its page size (SQLite ignores this then).
    this.#db.exec("PRAGMA page_size = 32768");
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA wal_autocheckpoint = 128");
    // With WAL, NORMAL survives a crash of the process (kill -9); only a power loss can drop
    // the last transactions.
    this.#db.exec("PRAGMA synchronous = NORMAL");
    this.#db.exec("PRAGMA busy_timeout = 5000");
    migrate(this.#db);
    this.#resealOnce(dataDir);
    // Freed space is zeroed within its pages, at no extra I/O: a finished job's erased spec
    // does not linger in the file (sealed as it was anyway).
    this.#db.exec("PRAGMA secure_delete = FAST");
    secureDataDir(dataDir);
    const prepare = (sql: string) => this.#db.prepare(sql);
    this.#sql = {
      insertJob: prepare(
        "INSERT INTO jobs (id, created_at, status, result, repo, branch, spec, state) " +
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      updateJob: prepare(
        "UPDATE jobs SET status = ?, result = ?, finished_at = ?, state = ? WHERE id = ?",
      ),
      updateSpec: prepare("UPDATE jobs SET spec = ? WHERE id = ?"),
      insertEvent: prepare(
        "INSERT OR IGNORE INTO events (job_id, n, at, attempt, seq, data) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      insertLog: prepare(
        "INSERT OR IGNORE INTO log_chunks (job_id, start, bytes, text) VALUES (?, ?, ?, ?)",
      ),
      getJob: prepare("SELECT * FROM jobs WHERE id = ?"),
      events: prepare(
        "SELECT e.n, e.at, e.data, l.text, l.bytes FROM events e LEFT JOIN log_chunks l " +
          `ON l.job_id = e.job_id AND l.start = json_extract(e.data, '$."${LOG_REF}"') ` +
          "WHERE e.job_id = ? AND e.n > ? ORDER BY e.n LIMIT ?",
      ),
      // The chunk holding a byte, then the chunks up to the end: two seeks in the primary key.
      // (A single `start < end AND start + bytes > start` scanned every chunk before `end`, so
      // reading a long log a step at a time took time quadratic in its length.)
      logFloor: prepare(
        "SELECT MAX(start) AS start FROM log_chunks WHERE job_id = ? AND start <= ?",
      ),
      log: prepare(
        // The text's UTF-8 bytes as SQLite holds them: no JavaScript string made and encoded again.
        "SELECT start, CAST(text AS BLOB) AS data FROM log_chunks " +
          "WHERE job_id = ? AND start >= ? AND start < ? " +
          "ORDER BY start",
      ),
      unfinished: prepare("SELECT * FROM jobs WHERE status != 'done' ORDER BY position"),
      lastSeqs: prepare(
        "SELECT attempt, MAX(seq) AS seq FROM events WHERE job_id = ? GROUP BY attempt",
      ),
      lastN: prepare("SELECT MAX(n) AS n FROM events WHERE job_id = ?"),
      lastLog: prepare(
        "SELECT start, bytes, text FROM log_chunks WHERE job_id = ? ORDER BY start DESC LIMIT 1",
      ),
      deleteJob: prepare("DELETE FROM jobs WHERE id = ?"),
      deleteEvents: prepare("DELETE FROM events WHERE job_id = ?"),
      deleteLog: prepare("DELETE FROM log_chunks WHERE job_id = ?"),
      packed: prepare("SELECT bytes, ends_with_newline FROM log_packed WHERE job_id = ?"),
      blocks: prepare(
        "SELECT n, data FROM log_blocks WHERE job_id = ? AND n BETWEEN ? AND ? ORDER BY n",
      ),
      block: prepare("SELECT data FROM log_blocks WHERE job_id = ? AND n = ?"),
      insertBlock: prepare("INSERT OR REPLACE INTO log_blocks (job_id, n, data) VALUES (?, ?, ?)"),
      deleteBlocks: prepare("DELETE FROM log_blocks WHERE job_id = ?"),
      markPacked: prepare(
        "INSERT INTO log_packed (job_id, bytes, packed_bytes, ends_with_newline) VALUES (?, ?, ?, ?)",
      ),
      chunkIndex: prepare("SELECT start, bytes FROM log_chunks WHERE job_id = ? ORDER BY start"),
      jobStatus: prepare("SELECT status FROM jobs WHERE id = ?"),
      jobState: prepare("SELECT state FROM jobs WHERE id = ?"),
      packState: prepare("UPDATE jobs SET state = ? WHERE id = ? AND state = ?"),
      unpacked: prepare(
        "SELECT id FROM jobs j WHERE status = 'done' " +
          "AND NOT EXISTS (SELECT 1 FROM log_packed p WHERE p.job_id = j.id) " +
          "AND EXISTS (SELECT 1 FROM log_chunks l WHERE l.job_id = j.id) ORDER BY position",
      ),
    };
    // Finished logs not packed yet: written by an older strider, or interrupted by a restart.
    for (const row of this.#sql.unpacked.all() as Row[]) this.#schedulePack(String(row.id));
  }

  /** The open database, for stores that keep their own tables in the same file (projects). */
  get database(): DatabaseSync {
    return this.#db;
  }

  /** What seals secrets in this database, for stores that keep their own tables in it. */
  get secretBox(): SecretBox {
    return this.#box;
  }

  /**
   * Seals what an older strider or an older key left (`resealAll`). The replaced bytes are
   * overwritten with zeros (`secure_delete`) and the write-ahead log, which still holds the old
   * pages, is copied back and emptied, so that no file keeps them; only then is the old key file
   * removed.
   */
  #resealOnce(dataDir: string): void {
    this.#db.exec("PRAGMA secure_delete = ON");
    let changed = 0;
    this.#transaction(() => changed = resealAll(this.#db, this.#box));
    if (changed) this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    forgetOldKeyFile(dataDir);
  }

  #sealSpec(id: string, spec: JobSpec): string {
    return this.#box.seal(JSON.stringify(spec), jobContext(id));
  }

  createJob(record: JobRecord): Promise<void> {
    try {
      this.#insert(record);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #insert(record: JobRecord): void {
    // The row commits on its own (durable before the API answers); the pending batch keeps its
    // timer rather than being forced into a commit of its own on every submit.
    const { spec, view } = record;
    try {
      this.#sql.insertJob.run(
        record.id,
        Date.parse(view.createdAt),
        view.status,
        view.result,
        spec.repo.url,
        "branch" in spec.ref ? spec.ref.branch : null,
        this.#sealSpec(record.id, spec),
        JSON.stringify(this.#state(record)),
      );
    } catch (error) {
      if (String(error).includes("UNIQUE")) {
        throw new RangeError(`Job id '${record.id}' is already taken`);
      }
      throw error;
    }
  }

  getJob(id: string): Promise<JobRecord | undefined> {
    return Promise.resolve(this.#get(id));
  }

  #get(id: string): JobRecord | undefined {
    // Read your writes: a state still queued is written first.
    if (this.#batch.isDirty(id)) this.#flush(true);
    const row = this.#sql.getJob.get(id) as Row | undefined;
    return row ? this.#load(row) : undefined;
  }

  listJobs(filter: JobFilter): Promise<JobPage> {
    this.#flush(true);
    const where: string[] = [];
    const params: (string | number)[] = [];
    const add = (sql: string, value: string | number | undefined) => {
      if (value === undefined || value === "") return;
      where.push(sql);
      params.push(value);
    };
    add("status = ?", filter.status);
    add("result = ?", filter.result);
    add("repo = ?", filter.repo);
    add("branch = ?", filter.branch);
    add("created_at >= ?", filter.since);
    if (filter.cursor) add("position < ?", decodeCursor(filter.cursor));
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ` +
      "ORDER BY position DESC LIMIT ?";
    const rows = this.#db.prepare(sql).all(...params, filter.limit + 1) as Row[];
    const page = rows.slice(0, filter.limit);
    const next = rows.length > filter.limit
      ? encodeCursor(Number(page[page.length - 1].position))
      : null;
    return Promise.resolve({ records: page.map((row) => this.#load(row)), next });
  }

  unfinishedJobs(): Promise<JobRecord[]> {
    this.#flush(true);
    const rows = this.#sql.unfinished.all() as Row[];
    return Promise.resolve(rows.map((row) => this.#load(row)));
  }

  appendEvent(id: string, event: RecordedEvent, log?: LogChunk): void {
    if (log) this.#lastAppend = performance.now();
    this.#batch.append({ id, event, log });
  }

  events(id: string, after = 0, limit?: number): Promise<RecordedEvent[]> {
    return Promise.resolve(this.#eventsOf(id, after, limit));
  }

  #eventsOf(id: string, after: number, limit?: number): RecordedEvent[] {
    // LIMIT -1: all of them.
    const rows = this.#sql.events.all(id, after, limit ?? -1) as Row[];
    let packed: PackedLogReader | undefined;
    const stored = rows.map((row) => {
      const data = JSON.parse(String(row.data));
      if (row.text !== null && LOG_REF in data) {
        const start = Number(data[LOG_REF]);
        delete data[LOG_REF];
        data.text = textOf(row.text);
        release(row.text);
        if (data.text === "" && Number(row.bytes) > 0) {
          // A packed log: the chunk's text is in the compressed blocks.
          packed ??= this.#packedReader(id);
          const bytes = packed.read(start, start + Number(row.bytes));
          data.text = decoder.decode(bytes);
          release(bytes);
        }
      }
      return { n: Number(row.n), at: Number(row.at), data };
    }) as RecordedEvent[];
    packed?.close();
    return this.#batch.withPending(id, stored, after, limit);
  }

  readLog(id: string, start: number, end: number): Promise<Uint8Array> {
    const packed = this.#sql.packed.get(id) as Row | undefined;
    if (packed) {
      const read: Uint8Array[] = [];
      return readPacked(
        start,
        end,
        Number(packed.bytes),
        (first, last) =>
          (this.#sql.blocks.all(id, first, last) as Row[]).map((row) => {
            read.push(row.data as Uint8Array);
            return { n: Number(row.n), data: row.data as Uint8Array };
          }),
      ).finally(() => read.forEach(release));
    }
    return Promise.resolve(this.#readRaw(id, start, end));
  }

  /** Bytes of a log not packed (yet), from its chunks and what is queued. */
  #readRaw(id: string, start: number, end: number): Uint8Array {
    const out = new Uint8Array(Math.max(0, end - start));
    const place = (chunkStart: number, bytes: Uint8Array) => {
      const from = Math.max(start, chunkStart);
      const to = Math.min(end, chunkStart + bytes.length);
      if (from < to) out.set(bytes.subarray(from - chunkStart, to - chunkStart), from - start);
    };
    const floor = (this.#sql.logFloor.get(id, start) as Row | undefined)?.start ?? start;
    for (const row of this.#sql.log.all(id, floor, end) as Row[]) {
      if (row.data) place(Number(row.start), row.data as Uint8Array);
      release(row.data);
    }
    for (const { log } of this.#batch.pending(id)) {
      if (log) place(log.start, log.raw ?? encoder.encode(log.text));
    }
    return out;
  }

  #packedReader(id: string): PackedLogReader {
    const packed = this.#sql.packed.get(id) as Row | undefined;
    return new PackedLogReader(
      Number(packed?.bytes ?? 0),
      (n) => (this.#sql.block.get(id, n) as Row | undefined)?.data as unknown as Uint8Array,
    );
  }

  /**
   * Resolves once the logs of the jobs finished so far are compressed (or found gone): for
   * tests and the bench; nothing waits on it in the queen.
   */
  async logsPacked(): Promise<void> {
    while (this.#packing) await this.#packing;
  }

  /** What the packed logs take against their raw size, for the bench and metrics. */
  packedSize(): { jobs: number; bytes: number; packedBytes: number } {
    const row = this.#db.prepare(
      "SELECT COUNT(*) AS jobs, COALESCE(SUM(bytes), 0) AS bytes, " +
        "COALESCE(SUM(packed_bytes), 0) AS packed FROM log_packed",
    ).get() as Row;
    return { jobs: Number(row.jobs), bytes: Number(row.bytes), packedBytes: Number(row.packed) };
  }

  /** Resolves once no output was appended for a while (see `PACK_QUIET_MS`), or on close. */
  async #quiet(): Promise<void> {
    const since = performance.now();
    while (
      !this.#closed && performance.now() - this.#lastAppend < PACK_QUIET_MS &&
      performance.now() - since < PACK_WAIT_MS
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  #schedulePack(id: string): void {
    this.#packQueue.push(id);
    this.#packing ??= this.#packAll();
  }

  async #packAll(): Promise<void> {
    try {
      while (this.#packQueue.length && !this.#closed) {
        const id = this.#packQueue.shift()!;
        try {
          await this.#pack(id);
        } catch (error) {
          // The raw log stays in force; a restart tries again.
          if (error !== GONE) console.error(`strider: could not compress the log of ${id}:`, error);
        }
      }
    } finally {
      this.#packing = undefined;
    }
  }

  /**
   * Compresses a finished job's log block by block (a write per block, the queen's thread free
   * while zlib works), then in one transaction marks it packed and empties its raw chunks. A job
   * deleted meanwhile is dropped; a crash half way leaves the raw log, and it is packed again.
   */
  async #pack(id: string): Promise<void> {
    const alive = () =>
      !this.#closed && (this.#sql.jobStatus.get(id) as Row | undefined)?.status === "done";
    if (!alive() || this.#sql.packed.get(id)) return;
    const lastLog = this.#sql.lastLog.get(id) as Row | undefined;
    if (!lastLog) return;
    const total = Number(lastLog.start) + Number(lastLog.bytes);
    const last = bytesOf(lastLog.text);
    const endsWithNewline = last.length > 0 && last[last.length - 1] === 10;
    this.#sql.deleteBlocks.run(id);
    // One buffer for every block read: a fresh 1 MiB array per block is memory the runtime
    // returns late (600 blocks added ~60 MB of RSS).
    const block = new Uint8Array(LOG_BLOCK_BYTES);
    const packedBytes = await packLog(
      total,
      async (start, end) => {
        await this.#quiet();
        const floor = (this.#sql.logFloor.get(id, start) as Row | undefined)?.start ?? start;
        // The chunks' bytes as stored (BLOB, or TEXT of an older strider cast to its UTF-8).
        for (const row of this.#sql.log.all(id, floor, end) as Row[]) {
          const bytes = row.data as Uint8Array | null;
          if (!bytes) continue;
          const chunkStart = Number(row.start);
          const from = Math.max(start, chunkStart);
          const to = Math.min(end, chunkStart + bytes.length);
          if (from < to) {
            block.set(bytes.subarray(from - chunkStart, to - chunkStart), from - start);
          }
          release(bytes);
        }
        return block.subarray(0, end - start);
      },
      ({ n, data }) => {
        if (!alive()) throw GONE;
        this.#sql.insertBlock.run(id, n, data);
        release(data);
      },
    );
    // The saved view holds up to 1 MiB of the output too: packed with the log.
    const state = (this.#sql.jobState.get(id) as Row | undefined)?.state;
    const packedState = typeof state === "string" ? await packText(state) : undefined;
    if (!alive()) return;
    this.#transaction(() => {
      this.#sql.markPacked.run(id, total, packedBytes, endsWithNewline ? 1 : 0);
      // The chunks stay as an index of positions (output events point to them), without text:
      // deleted and inserted again, so that their pages are dense, not emptied in place.
      const index = this.#sql.chunkIndex.all(id) as Row[];
      this.#sql.deleteLog.run(id);
      for (const { start, bytes } of index) this.#sql.insertLog.run(id, start, bytes, "");
      // Only if it was not rewritten meanwhile.
      if (packedState) this.#sql.packState.run(packedState, id, state!);
    });
  }

  saveJob(record: JobRecord): void {
    this.#batch.save(record);
  }

  deleteJob(id: string): Promise<boolean> {
    return Promise.resolve(this.#delete(id));
  }

  #delete(id: string): boolean {
    const record = this.#get(id);
    if (!record || record.view.status !== "done") return false;
    this.#flush();
    this.#transaction(() => {
      this.#sql.deleteEvents.run(id);
      this.#sql.deleteLog.run(id);
      this.#sql.deleteJob.run(id);
    });
    this.#batch.forget(id);
    return true;
  }

  prune(retention: Retention, now: number): Promise<number> {
    this.#flush();
    const doomed = new Set<string>();
    if (retention.keepJobs !== undefined) {
      const rows = this.#db.prepare(
        "SELECT id FROM jobs WHERE status = 'done' ORDER BY position DESC LIMIT -1 OFFSET ?",
      ).all(retention.keepJobs) as Row[];
      for (const row of rows) doomed.add(String(row.id));
    }
    if (retention.keepDays !== undefined) {
      const rows = this.#db.prepare(
        "SELECT id FROM jobs WHERE status = 'done' AND COALESCE(finished_at, created_at) < ?",
      ).all(now - retention.keepDays * 86_400_000) as Row[];
      for (const row of rows) doomed.add(String(row.id));
    }
    let removed = 0;
    for (const id of doomed) if (this.#delete(id)) removed++;
    return Promise.resolve(removed);
  }

  afterCommit(callback: () => void, options?: CommitOptions): void {
    this.#batch.afterCommit(callback, options?.soon);
  }

  async close(): Promise<void> {
    this.#batch.close();
    this.#closed = true;
    // A block being compressed finishes; the next write sees the store closed and stops.
    while (this.#packing) await this.#packing;
    this.#db.close();
  }

  /** Commits what is queued now (SQLite writes synchronously, so it is done on return). */
  #flush(allStates = false): void {
    void this.#batch.flush(allStates);
  }

  /** Writes one batch in one transaction. */
  #commit({ events, states }: Batch): void {
    const finished: string[] = [];
    this.#transaction(() => {
      for (const { id, event, log } of events) {
        const { data } = event;
        // Output whose text is the log chunk's, byte for byte, points to the chunk instead.
        const stored = log && "text" in data && data.text === log.text
          ? { ...data, text: undefined, [LOG_REF]: log.start }
          : data;
        this.#sql.insertEvent.run(
          id,
          event.n,
          event.at,
          data.attempt,
          "seq" in data ? data.seq : 0,
          JSON.stringify(stored),
        );
        // As bytes: node:sqlite reads TEXT only up to a NUL, and output may hold NUL bytes.
        if (log) {
          this.#sql.insertLog.run(id, log.start, log.bytes, log.raw ?? utf8View(log.text));
        }
      }
      for (const record of states) {
        const { view } = record;
        this.#sql.updateJob.run(
          view.status,
          view.result,
          view.finishedAt ? Date.parse(view.finishedAt) : null,
          JSON.stringify(this.#state(record)),
          record.id,
        );
        // Final: the job never runs again, so its row forgets its secrets and credentials.
        if (view.status === "done") {
          this.#sql.updateSpec.run(
            this.#sealSpec(record.id, eraseSecrets(record.spec)),
            record.id,
          );
          finished.push(record.id);
        }
      }
    });
    // A binary output frame's bytes (`raw`, the tail of the message the queen received) are in
    // the database now and read by nothing else: free the message at once. Left to the
    // collector, 200 MB of frames grew the malloc heap by tens of MB that stayed.
    for (const { log } of events) if (log?.raw) releaseWhole(log.raw);
    // Its log is complete: compress it, in the background.
    for (const id of finished) this.#schedulePack(id);
  }

  #transaction(body: () => void): void {
    this.#db.exec("BEGIN");
    try {
      body();
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  #state(record: JobRecord): StoredState {
    return {
      view: record.view,
      viewN: record.viewN,
      viewBytes: record.viewBytes,
      ...(record.requeued ? { requeued: record.requeued } : {}),
      ...(record.cancelRequested ? { cancelRequested: true } : {}),
    };
  }

  /**
   * A record from its row, with the view as last written (`viewN`: while a job runs, at most every
   * few hundred milliseconds; the recorder folds the events after it) and the positions taken from
   * the events and log themselves.
   */
  #load(row: Row): JobRecord {
    const id = String(row.id);
    const state = JSON.parse(unpackText(row.state)) as StoredState;
    const record: JobRecord = {
      id,
      spec: JSON.parse(openText(this.#box, String(row.spec), jobContext(id))) as JobSpec,
      view: state.view,
      viewN: state.viewN,
      lastSeq: {},
      lastN: state.viewN,
      logBytes: 0,
      logEndsWithNewline: true,
      logAttempt: 0,
      viewBytes: state.viewBytes,
      requeued: state.requeued,
      cancelRequested: state.cancelRequested,
    };
    const lastN = (this.#sql.lastN.get(id) as Row | undefined)?.n;
    record.lastN = Math.max(state.viewN, Number(lastN ?? 0));
    for (const { attempt, seq } of this.#sql.lastSeqs.all(id) as Row[]) {
      record.lastSeq[Number(attempt)] = Number(seq);
    }
    const lastLog = this.#sql.lastLog.get(id) as Row | undefined;
    if (lastLog) {
      record.logBytes = Number(lastLog.start) + Number(lastLog.bytes);
      const packed = this.#sql.packed.get(id) as Row | undefined;
      const last = bytesOf(lastLog.text);
      record.logEndsWithNewline = packed
        ? Number(packed.ends_with_newline) === 1
        : last.length > 0 && last[last.length - 1] === 10;
    }
    record.logAttempt = record.view.attempt;
    return record;
  }
}
