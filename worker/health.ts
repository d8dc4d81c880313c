/**
 * `strider worker --health-addr HOST:PORT`: `/healthz` (200 while connected to the queen, 503
 * otherwise, with the worker's state as JSON) and `/metrics` in Prometheus text, for the
 * orchestrator running the worker.
 */
import { Gauge, Registry } from "prom-client";
import type { WorkerStats } from "./worker.ts";

/** Serves the endpoints until `signal` aborts; resolves with the address it listens on. */
export async function serveHealth(
  addr: { hostname: string; port: number },
  stats: () => WorkerStats,
  signal: AbortSignal,
): Promise<Deno.NetAddr> {
  const registry = new Registry();
  const gauge = (name: string, help: string, read: (s: WorkerStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(stats()));
      },
    });
  gauge("strider_worker_connected", "1 while connected to the queen", (s) => Number(s.connected));
  gauge("strider_worker_draining", "1 while draining", (s) => Number(s.draining));
  gauge("strider_worker_capacity", "Jobs run at once", (s) => s.capacity);
  gauge("strider_worker_jobs_running", "Jobs running now", (s) => s.running);
  gauge("strider_worker_jobs_waiting", "Jobs waiting in the worker's queue", (s) => s.waiting);
  gauge("strider_worker_unacked_events", "Events the queen has not acknowledged", (s) => s.unacked);
  new Gauge({
    name: "strider_worker_jobs_finished",
    help: "Attempts finished since start, by result",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      for (const [result, count] of Object.entries(stats().finished)) this.set({ result }, count);
    },
  });

  const { promise, resolve } = Promise.withResolvers<Deno.NetAddr>();
  Deno.serve({
    hostname: addr.hostname,
    port: addr.port,
    signal,
    onListen: (a) => resolve(a as Deno.NetAddr),
  }, async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") {
      const now = stats();
      return Response.json(now, { status: now.connected ? 200 : 503 });
    }
    if (path === "/metrics") {
      return new Response(await registry.metrics(), {
        headers: { "content-type": registry.contentType },
      });
    }
    return new Response("not found: try /healthz or /metrics\n", { status: 404 });
  });
  return await promise;
}
