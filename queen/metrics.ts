/**
 * The queen's Prometheus metrics (`GET /metrics`), all named `strider_*`. Counted from the
 * events the hub fans out, and read from the core's state when scraped, so the hot path does
 * no extra work.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { attemptKey } from "../protocol/mod.ts";
import type { QueenCore } from "./queen.ts";

/** The registry of one queen. */
export function queenMetrics(core: QueenCore): Registry {
  const registry = new Registry();
  const finished = new Counter({
    name: "strider_jobs_finished_total",
    help: "Jobs finished, by result",
    labelNames: ["result"],
    registers: [registry],
  });
  const started = new Counter({
    name: "strider_attempts_started_total",
    help: "Attempts that started on a drone",
    registers: [registry],
  });
  const dispatch = new Histogram({
    name: "strider_dispatch_latency_seconds",
    help: "Time from a job's dispatch to its worker's job:started",
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const output = new Counter({
    name: "strider_output_bytes_total",
    help: "Bytes of job output recorded",
    registers: [registry],
  });
  const events = new Counter({
    name: "strider_events_recorded_total",
    help: "Job events recorded",
    registers: [registry],
  });
  new Gauge({
    name: "strider_queue_length",
    help: "Jobs waiting in the queen's queue",
    registers: [registry],
    collect() {
      this.set(core.queueDepth());
    },
  });
  new Gauge({
    name: "strider_drones_connected",
    help: "Workers connected and identified",
    registers: [registry],
    collect() {
      this.set(core.drones.size);
    },
  });
  if (core.fleet) {
    // Several queens: every other metric counts this queen's own; this one the cluster's.
    const fleet = core.fleet;
    new Gauge({
      name: "strider_fleet_drones_connected",
      help: "Workers connected to any live queen sharing this queen's database",
      registers: [registry],
      async collect() {
        // The database unreachable: the last count stays, and the queen's own metrics still go.
        this.set(await fleet.count().catch(() => this.get().then((m) => m.values[0]?.value ?? 0)));
      },
    });
  }
  new Gauge({
    name: "strider_drone_capacity",
    help: "Job slots across connected drones",
    registers: [registry],
    collect() {
      let total = 0;
      for (const drone of core.drones.values()) total += drone.info?.capacity ?? 0;
      this.set(total);
    },
  });
  new Gauge({
    name: "strider_sockets",
    help: "Open connections, by kind",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      this.set({ kind: "worker" }, core.drones.size);
      this.set({ kind: "follower" }, core.hub.size());
    },
  });

  const dispatchedAt = new Map<string, number>();
  core.hub.followAll(({ at, data }) => {
    events.inc();
    switch (data.event) {
      case "job:dispatched":
        dispatchedAt.set(attemptKey(data.id, data.attempt), at);
        break;
      case "job:returned":
        dispatchedAt.delete(attemptKey(data.id, data.attempt));
        break;
      case "job:started": {
        started.inc();
        const key = attemptKey(data.id, data.attempt);
        const from = dispatchedAt.get(key);
        if (from !== undefined) dispatch.observe((at - from) / 1000);
        dispatchedAt.delete(key);
        break;
      }
      case "job:cmd:stdout":
      case "job:cmd:stderr":
      case "job:stdout":
      case "job:stderr":
        output.inc(data.text.length);
        break;
      case "job:done":
        if (core.isFinished(data.id)) {
          finished.inc({ result: data.result });
        }
        dispatchedAt.delete(attemptKey(data.id, data.attempt));
        break;
    }
  });
  return registry;
}
