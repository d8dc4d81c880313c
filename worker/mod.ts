/**
 * The worker role: `startWorker` connects to a queen and runs the jobs it is given.
 * @module
 */
export { startWorker } from "./worker.ts";
export type { RunningWorker, WorkerOptions } from "./worker.ts";
export type { Isolation } from "./sandbox.ts";
