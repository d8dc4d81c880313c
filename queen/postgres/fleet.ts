/**
 * The shared `drones` table read as the fleet view: the drones of every other live queen, each
 * row validated (another queen, of another version, or anyone with write access to the database
 * wrote it), with the queen it is connected to. A queen is live while it holds its liveness lock
 * (liveness.ts) and has not gone silent past a lease; a dead queen's drones are left out at once,
 * before a survivor removes its rows.
 */
import type { Sql } from "postgres";
import { z } from "zod";
import type { DroneView } from "../../protocol/mod.ts";
import type { Drone } from "../drone.ts";
import type { DroneLoad } from "../scheduler.ts";

/** Longest text a row may give a drone's name, version, a plugin, label or job id. */
const MAX_TEXT = 1000;
/** Most plugins, labels or jobs one row may list. */
const MAX_LIST = 10_000;

const text = z.string().max(MAX_TEXT);
const list = z.array(text).max(MAX_LIST);

/** A row's `load`: the scheduler's `DroneLoad`, and what the fleet view shows besides. */
export const DroneRowSchema = z.object({
  name: text,
  speed: z.number().positive().max(1e6),
  capacity: z.int().min(0).max(1e6),
  active: z.int().min(0).max(1e7),
  plugins: list,
  labels: list,
  draining: z.boolean(),
  // Written by queens from before the fleet view: absent.
  version: text.optional(),
  // Within what a Date can hold.
  connectedAt: z.int().min(0).max(8.64e15).optional(),
  // Up to capacity (10,000) times one slot and one queued job each.
  jobs: z.array(text).max(100_000).optional(),
});

/** What a queen writes of its drone: its load, and its version, start and jobs for the view. */
export function droneRow(drone: Drone): DroneLoad & {
  version: string;
  connectedAt: number;
  jobs: string[];
} {
  return {
    ...drone.load(),
    version: drone.info?.version ?? "",
    connectedAt: drone.connectedAt,
    jobs: [...drone.jobs.keys()],
  };
}

/** The database's clock in ms, as the queens' heartbeats are written. */
const DB_NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/**
 * The queens table joined for the live ones only: the holder of `q.lock` is connected, and it has
 * written its heartbeat within `frozenMs`.
 */
function liveQueens(sql: Sql, frozenMs: number) {
  return sql`EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
      AND ((l.classid::bigint << 32) | l.objid::bigint) = q.lock)
    AND ${sql.unsafe(DB_NOW)} - q.seen_at <= ${frozenMs}`;
}

/** The drones of the live queens other than `self`, or only the one with table id `only`. */
export async function readFleet(
  sql: Sql,
  self: string,
  frozenMs: number,
  log: (message: string) => void,
  only?: string,
): Promise<DroneView[]> {
  const rows = await sql`SELECT d.id, d.queen, d.load, q.url, q.seen_at FROM drones d
    JOIN queens q ON q.id = d.queen
    WHERE d.queen <> ${self} AND ${liveQueens(sql, frozenMs)}
      ${only === undefined ? sql`` : sql`AND d.id = ${only}`}
    ORDER BY d.queen, d.id`;
  const drones: { view: DroneView; jobs: string[] }[] = [];
  for (const row of rows) {
    const queen = String(row.queen);
    const key = String(row.id);
    const load = parseRow(String(row.load));
    if (!load || !key.startsWith(`${queen}/`)) {
      log(`drone table: row ${JSON.stringify(key.slice(0, 100))} is not a drone; left out`);
      continue;
    }
    const seen = new Date(Number(row.seen_at)).toISOString();
    const jobs = load.jobs ?? [];
    drones.push({
      jobs,
      view: {
        id: `${key.slice(queen.length + 1)}@${queen}`,
        name: load.name,
        version: load.version ?? "",
        speed: load.speed,
        capacity: load.capacity,
        running: 0,
        queued: jobs.length,
        jobs,
        plugins: load.plugins,
        labels: load.labels,
        draining: load.draining,
        connectedAt: load.connectedAt === undefined
          ? seen
          : new Date(load.connectedAt).toISOString(),
        // The drone's queen vouched for it at its last heartbeat.
        lastSeen: seen,
        queen: { id: queen, url: String(row.url) },
      },
    });
  }
  // Started or waiting in the worker's queue: the jobs' rows say (the drone row lags).
  const ids = drones.flatMap((d) => d.jobs);
  if (ids.length) {
    const started = new Set(
      (await sql`SELECT id FROM jobs WHERE id = ANY(${ids}) AND status = 'started'`)
        .map((r) => String(r.id)),
    );
    for (const { view, jobs } of drones) {
      view.running = jobs.filter((id) => started.has(id)).length;
      view.queued = jobs.length - view.running;
    }
  }
  return drones.map((d) => d.view);
}

/** How many drones the live queens have, `self` included. */
export async function countFleet(sql: Sql, frozenMs: number): Promise<number> {
  const [row] = await sql`SELECT count(*) AS n FROM drones d JOIN queens q ON q.id = d.queen
    WHERE ${liveQueens(sql, frozenMs)}`;
  return Number(row.n);
}

function parseRow(json: string): z.infer<typeof DroneRowSchema> | undefined {
  try {
    const parsed = DroneRowSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
