/**
 * A real HAProxy in front of test queens: HTTP and WebSocket (upgraded connections are tunnels),
 * roundrobin over the queens that pass a `/healthz` check. Config from `haproxyConfig`, the same
 * shape as contrib/haproxy.cfg.
 */
import { join } from "node:path";
import { Proc, waitUntil } from "./cluster.ts";

/** A free port on 127.0.0.1 (for processes that must be told their port up front). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** HAProxy's configuration for queens on `ports`, listening on `port`. */
export function haproxyConfig(port: number, queens: number[]): string {
  return [
    "global",
    "  maxconn 2000",
    "defaults",
    "  mode http",
    "  timeout connect 2s",
    "  timeout client 1h",
    "  timeout server 1h",
    // A worker's WebSocket is a tunnel once upgraded; it stays open for the worker's life.
    "  timeout tunnel 1h",
    "  option redispatch",
    "  retries 3",
    "frontend strider",
    `  bind 127.0.0.1:${port}`,
    "  default_backend queens",
    "backend queens",
    "  balance roundrobin",
    // A queen that is starting (or stopped) fails this check and gets no traffic.
    "  option httpchk GET /healthz",
    ...queens.map((p, i) => `  server q${i + 1} 127.0.0.1:${p} check inter 200 fall 2 rise 1`),
    "",
  ].join("\n");
}

export interface TestHaproxy {
  url: string;
  proc: Proc;
  stop(): Promise<void>;
}

/**
 * Starts HAProxy in front of the queens on `ports`, listening on `port` (default: a free one);
 * resolves once it accepts connections.
 */
export async function startHaproxy(queens: number[], port = freePort()): Promise<TestHaproxy> {
  const dir = await Deno.makeTempDir({ prefix: "strider-haproxy-" });
  const cfg = join(dir, "haproxy.cfg");
  await Deno.writeTextFile(cfg, haproxyConfig(port, queens));
  const program = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  }) ?? "haproxy";
  const proc = new Proc(["-f", cfg, "-db"], { program, inherit: true });
  await waitUntil(
    async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    "haproxy listening",
  );
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    async stop() {
      await proc.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
