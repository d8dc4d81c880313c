/**
 * The seed's scheduling rule as a pure function: a job goes to the fastest drone that has open
 * capacity and can run it; if every such drone is full, to the one with the shortest queue
 * relative to its capacity, as long as that queue is under its bound (`QUEUE_PER_SLOT` waiting
 * jobs per slot); otherwise nowhere (it waits in the queen's queue, where any drone that frees a
 * slot can take it).
 */
import type { JobSpec } from "../protocol/mod.ts";

/**
 * Jobs a drone may hold waiting in its own queue, per slot of capacity. A waiting job costs
 * nothing if its drone goes away (it returns to the queen's queue uncharged), and the queen
 * takes it back when a slot frees elsewhere; the bound keeps a drone from hoarding work that
 * others could start sooner.
 */
export const QUEUE_PER_SLOT = 1;

/** What the scheduler needs to know of a drone. */
export interface DroneLoad {
  id: string;
  name: string;
  speed: number;
  capacity: number;
  /** Attempts assigned to the drone and not finished: running plus queued at the worker. */
  active: number;
  plugins: readonly string[];
  labels: readonly string[];
  draining: boolean;
  /** Jobs the drone still takes before it exits (`--max-jobs`); undefined: no limit. */
  remaining?: number;
  /**
   * Whether the drone may hold waiting jobs (default true). Workers of the previous protocol
   * cannot give one back, so they get jobs only for a free slot.
   */
  queues?: boolean;
}

/** What a job asks of a drone. */
export interface JobNeeds {
  plugins: readonly string[];
  labels: readonly string[];
}

/** What a job's spec asks of a drone. */
export function needsOf(spec: JobSpec): JobNeeds {
  return { plugins: spec.plugins ?? [], labels: spec.labels ?? [] };
}

/** Jobs with `serialize: true` and the same key (repository and ref) never run at once. */
export function branchKey(spec: JobSpec): string {
  const ref = "fetch" in spec.ref ? spec.ref.fetch : spec.ref.branch;
  return `${spec.repo.url}\u0000${ref}`;
}

/** The build a job belongs to: its build's id, or its own for a build of one. */
export function buildOf(spec: JobSpec | undefined): string | undefined {
  return spec?.build?.id ?? spec?.job_id;
}

/** Whether `drone` has every plugin and every label `needs` names, and still takes jobs. */
export function canRun(drone: DroneLoad, needs: JobNeeds): boolean {
  if (drone.draining) return false;
  if (drone.remaining !== undefined && drone.remaining <= 0) return false;
  return needs.plugins.every((p) => drone.plugins.includes(p)) &&
    needs.labels.every((l) => drone.labels.includes(l));
}

/** Orders by name then id, so that ties always resolve the same way. */
function byIdentity(a: DroneLoad, b: DroneLoad): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Picks the drone for a job, or `undefined` when no connected drone can run it.
 *
 * Ties among open drones of equal speed go to the least loaded (relative to capacity), then by
 * name; ties among full drones of equal queue go to the faster, then by name.
 *
 * @example
 * ```ts
 * pickDrone({ plugins: [], labels: [] }, drones)?.id;
 * ```
 */
export function pickDrone(needs: JobNeeds, drones: readonly DroneLoad[]): DroneLoad | undefined {
  // One pass, no sorting: with thousands of drones this runs on every dispatch.
  const openOrder = (a: DroneLoad, b: DroneLoad) =>
    b.speed - a.speed || a.active / a.capacity - b.active / b.capacity || byIdentity(a, b);
  const queueOf = (d: DroneLoad) => (d.active - d.capacity) / d.capacity;
  const fullOrder = (a: DroneLoad, b: DroneLoad) =>
    queueOf(a) - queueOf(b) || b.speed - a.speed || byIdentity(a, b);
  let bestOpen: DroneLoad | undefined;
  let bestFull: DroneLoad | undefined;
  for (const drone of drones) {
    if (!canRun(drone, needs)) continue;
    if (drone.active < drone.capacity) {
      if (!bestOpen || openOrder(drone, bestOpen) < 0) bestOpen = drone;
    } else if (
      !bestOpen && drone.queues !== false &&
      drone.active < drone.capacity * (1 + QUEUE_PER_SLOT) &&
      (!bestFull || fullOrder(drone, bestFull) < 0)
    ) {
      bestFull = drone;
    }
  }
  return bestOpen ?? bestFull;
}

/**
 * Says why no drone can take a job, for the job's `waiting` field: no drones at all, none with
 * the plugins, none with the labels, or all draining.
 */
export function whyWaiting(needs: JobNeeds, drones: readonly DroneLoad[]): string {
  if (drones.length === 0) return "waiting for a drone to connect";
  const missing = (have: readonly string[], want: readonly string[]) =>
    want.filter((x) => !have.includes(x));
  const pluginsOk = drones.filter((d) => missing(d.plugins, needs.plugins).length === 0);
  if (pluginsOk.length === 0) {
    return `waiting for a drone with plugins: ${needs.plugins.join(", ")}`;
  }
  const labelsOk = pluginsOk.filter((d) => missing(d.labels, needs.labels).length === 0);
  if (labelsOk.length === 0) {
    return `waiting for a drone with labels: ${needs.labels.join(", ")}`;
  }
  if (labelsOk.some((d) => canRun(d, needs))) {
    return "waiting for a free slot: every drone that can run it is busy";
  }
  return "waiting: every drone that can run it is draining";
}

/** Whether some connected drone could ever run the job (busy or not): `--queue-timeout` ends
 * only jobs for which this is false. */
export function runnable(needs: JobNeeds, drones: readonly DroneLoad[]): boolean {
  return drones.some((d) => canRun(d, needs));
}

/**
 * The drones kept ready for `pickDrone` without a scan: grouped by what the rule compares besides
 * load (speed, capacity, plugins, labels, whether they queue), and within a group by their number
 * of active attempts, each level ordered by name then id. Only the first drone of each level can
 * win (the others tie with it on everything but identity, which it wins), so `pick` runs
 * `pickDrone` over those heads alone: a handful, whatever the size of the fleet. Drones that
 * take no jobs (draining, or `--max-jobs` used up) are left out. `update` must be called
 * whenever a drone's load changes.
 */
export class DroneLoadIndex {
  /** Group key → active count → drones, ordered by identity. */
  #groups = new Map<string, Map<number, DroneLoad[]>>();
  #entries = new Map<string, { group: string; load: DroneLoad }>();

  get size(): number {
    return this.#entries.size;
  }

  /** Puts (or moves) the drone at its current load. */
  update(load: DroneLoad): void {
    this.remove(load.id);
    if (load.draining || (load.remaining !== undefined && load.remaining <= 0)) return;
    const snapshot = { ...load };
    const group = JSON.stringify([
      load.speed,
      load.capacity,
      load.queues !== false,
      [...load.plugins].sort(),
      [...load.labels].sort(),
    ]);
    let levels = this.#groups.get(group);
    if (!levels) this.#groups.set(group, levels = new Map());
    let level = levels.get(load.active);
    if (!level) levels.set(load.active, level = []);
    level.splice(position(level, snapshot), 0, snapshot);
    this.#entries.set(load.id, { group, load: snapshot });
  }

  /** Forgets the drone (it left). */
  remove(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    const levels = this.#groups.get(entry.group)!;
    const level = levels.get(entry.load.active)!;
    const at = position(level, entry.load);
    if (level[at]?.id === id) level.splice(at, 1);
    if (level.length === 0) levels.delete(entry.load.active);
    if (levels.size === 0) this.#groups.delete(entry.group);
  }

  /** The drones that could win a pick: the first of each group and load level. */
  heads(): DroneLoad[] {
    const heads: DroneLoad[] = [];
    for (const levels of this.#groups.values()) {
      for (const level of levels.values()) heads.push(level[0]);
    }
    return heads;
  }

  /** What `pickDrone` would pick among every indexed drone. */
  pick(needs: JobNeeds): DroneLoad | undefined {
    return pickDrone(needs, this.heads());
  }
}

/** Where `load` belongs in `level` (ordered by identity): binary search. */
function position(level: readonly DroneLoad[], load: DroneLoad): number {
  let low = 0;
  let high = level.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (byIdentity(level[middle], load) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}
