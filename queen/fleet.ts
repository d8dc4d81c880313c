/**
 * The fleet as any queen shows it (`GET /api/drones`, the dashboard's drone list and page): this
 * queen's drones with their full live detail and, with several queens on PostgreSQL, the drones of
 * every other live queen as the shared `drones` table holds them. Drain and disconnect work on
 * any of them: one of another queen is asked of that queen (queen/postgres/cluster.ts).
 */
import type { DroneView } from "../protocol/mod.ts";
import type { Drone } from "./drone.ts";
import type { QueenCore } from "./queen.ts";

/** What an operator may do to a drone. */
export type DroneAction = "drain" | "disconnect";

/** A queen of the cluster: its id and where other queens reach it. */
export interface QueenRef {
  id: string;
  url: string;
}

/** The other queens' drones, from the database they share (`Cluster`). */
export interface Fleet {
  /** This queen. */
  readonly self: QueenRef;
  /** The drones of every other live queen, ids `DRONE@QUEEN`. */
  others(): Promise<DroneView[]>;
  /** One drone of another live queen by its `DRONE@QUEEN` id; undefined when none is connected. */
  other(id: string): Promise<DroneView | undefined>;
  /** Asks the queen of drone `DRONE@QUEEN` to drain or disconnect it. */
  relay(id: string, action: DroneAction): Promise<void>;
  /** Drones connected to any live queen, this one's included. */
  count(): Promise<number>;
}

/** Drains a drone: it finishes what it runs, takes nothing new, and its worker exits. */
export function drainDrone(drone: Drone): void {
  drone.draining = true;
  drone.send({ event: "drone:drain" });
}

/** Drains or disconnects a drone of this queen. */
export function applyDroneAction(drone: Drone, action: DroneAction): void {
  if (action === "drain") drainDrone(drone);
  else drone.close(1000, "disconnected by an operator");
}

/** A drone of this queen as the API shows it (with its queen when there are several). */
export function localView(core: QueenCore, drone: Drone): DroneView {
  const view = drone.view((id) => core.isStarted(id));
  return core.fleet ? { ...view, queen: core.fleet.self } : view;
}

/** Every drone: this queen's first, then those of the other live queens. */
export async function fleetViews(core: QueenCore): Promise<DroneView[]> {
  const own = [...core.drones.values()].map((d) => localView(core, d));
  if (!core.fleet) return own;
  return [...own, ...await core.fleet.others()];
}

/** A drone found by the id the fleet view gives it. */
export type FoundDrone = { local: Drone } | { remote: DroneView };

/** The drone `id` names: this queen's (`d1`, or `d1@<this queen>`), or another live queen's. */
export async function findDrone(core: QueenCore, id: string): Promise<FoundDrone | undefined> {
  const self = core.fleet?.self.id;
  const localId = self && id.endsWith(`@${self}`) ? id.slice(0, -(self.length + 1)) : id;
  const local = core.drones.get(localId);
  if (local) return { local };
  if (!core.fleet || !id.includes("@")) return undefined;
  const remote = await core.fleet.other(id);
  return remote && { remote };
}

/**
 * Drains or disconnects drone `id` wherever it is connected; returns its view as it was, or
 * undefined when no live queen has it. Another queen's drone is changed by that queen, a moment
 * later.
 */
export async function actOnDrone(
  core: QueenCore,
  id: string,
  action: DroneAction,
): Promise<DroneView | undefined> {
  const found = await findDrone(core, id);
  if (!found) return undefined;
  if ("local" in found) {
    applyDroneAction(found.local, action);
    return localView(core, found.local);
  }
  await core.fleet!.relay(found.remote.id, action);
  return found.remote;
}
