/**
 * A TCP proxy on a loopback port for end-to-end tests: it forwards every connection to a target
 * port, and can cut all current connections (both sides at once, as a network failure would)
 * while still accepting new ones.
 */

/** A running proxy. */
export class TcpProxy {
  readonly port: number;
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #pairs = new Set<Pair>();
  readonly #accepting: Promise<void>;
  /** How many connections were accepted, and how many were cut. */
  accepted = 0;
  cuts = 0;

  constructor(target: { hostname?: string; port: number }) {
    this.#target = { hostname: target.hostname ?? "127.0.0.1", port: target.port };
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#accepting = this.#accept();
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Connections open now. */
  get open(): number {
    return this.#pairs.size;
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        this.accepted++;
        void this.#serve(client);
      }
    } catch {
      // The listener was closed.
    }
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    const pair: Pair = { client, frozen: false, dropped: Promise.withResolvers<void>() };
    this.#pairs.add(pair);
    try {
      pair.upstream = await Deno.connect(this.#target);
      if (!this.#pairs.has(pair)) return; // Cut while connecting.
      await Promise.race([
        pipe(client, pair.upstream, pair),
        pipe(pair.upstream, client, pair),
      ]);
    } catch {
      // Either side went away.
    } finally {
      this.#drop(pair);
    }
  }

  #drop(pair: Pair): void {
    this.#pairs.delete(pair);
    pair.dropped.resolve();
    for (const conn of [pair.client, pair.upstream]) {
      try {
        conn?.close();
      } catch {
        // Already closed.
      }
    }
  }

  /** Closes every current connection on both sides; new connections are still accepted. */
  cut(): number {
    const count = this.#pairs.size;
    for (const pair of [...this.#pairs]) this.#drop(pair);
    this.cuts++;
    return count;
  }

  /**
   * Silently stops forwarding on every current connection, keeping it open (a half-open
   * connection: a dead NAT entry or a pulled cable sends no FIN); new connections still work.
   * Returns how many connections were frozen.
   */
  freeze(): number {
    for (const pair of this.#pairs) pair.frozen = true;
    return this.#pairs.size;
  }

  /** Stops accepting and closes every connection. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    this.cut();
    await this.#accepting;
  }
}

interface Pair {
  client: Deno.TcpConn;
  upstream?: Deno.TcpConn;
  /** Bytes are read and dropped instead of forwarded; an end is not passed on either. */
  frozen: boolean;
  dropped: PromiseWithResolvers<void>;
}

/** Copies `from` to `to` until `from` ends or either side fails; drops bytes while frozen. */
async function pipe(from: Deno.TcpConn, to: Deno.TcpConn, pair: Pair): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await from.read(buffer);
    if (n === null && pair.frozen) {
      // The other side never learns of it; the pair stays until cut or closed.
      return await pair.dropped.promise;
    }
    if (n === null) return;
    if (pair.frozen) continue;
    let written = 0;
    while (written < n) written += await to.write(buffer.subarray(written, n));
  }
}
