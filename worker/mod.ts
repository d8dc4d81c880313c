/**
 * The worker role: `startWorker` connects to a queen and runs the jobs it is given.
 * @module
 */
export { startWorker } from "./worker.ts";
export { serveHealth } from "./health.ts";
export type { RunningWorker, WorkerOptions, WorkerStats } from "./worker.ts";
export type { Isolation } from "./sandbox.ts";
export { DEFAULT_MAX_MEMORY_MIB, DEFAULT_MAX_PROCS } from "./sandbox.ts";
