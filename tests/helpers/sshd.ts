/**
 * A throwaway OpenSSH server on a loopback port for tests: its own host key, one authorized user
 * key (for root, which the tests run as), public-key login only. Stop it with `stop()`.
 */
import { join } from "node:path";

export const SSHD = "/usr/sbin/sshd";

/** Whether this machine has an sshd the tests can start. */
export function haveSshd(): boolean {
  try {
    return Deno.statSync(SSHD).isFile;
  } catch {
    return false;
  }
}

export interface TestSshd {
  port: number;
  /** The private key (OpenSSH format) that root may log in with. */
  privateKey: string;
  dir: string;
  stop(): Promise<void>;
  /** What sshd wrote to stderr, for diagnostics. */
  log(): string;
}

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resolves once something on `port` greets with an SSH banner; throws after `timeoutMs`. */
async function waitForBanner(port: number, timeoutMs: number, exited: () => boolean) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !exited()) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const buffer = new Uint8Array(64);
        const read = await Promise.race([
          conn.read(buffer),
          new Promise<null>((r) => setTimeout(() => r(null), 2000)),
        ]);
        if (read && new TextDecoder().decode(buffer.subarray(0, read)).startsWith("SSH-")) return;
      } finally {
        conn.close();
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not come up on port ${port}`);
}

/** Starts sshd on a free loopback port with a fresh host key and one user key for root. */
export async function startSshd(): Promise<TestSshd> {
  if (!haveSshd()) {
    throw new Error(`${SSHD} is missing: install openssh-server (bash .ci/run does)`);
  }
  const dir = await Deno.makeTempDir({ prefix: "strider-sshd-" });
  const hostKey = join(dir, "host_ed25519");
  const userKey = join(dir, "user_ed25519");
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", hostKey]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "strider-test", "-f", userKey]);
  const authorized = join(dir, "authorized_keys");
  await Deno.copyFile(`${userKey}.pub`, authorized);
  await Deno.chmod(authorized, 0o600);
  // sshd refuses to start without its privilege separation directory.
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const port = freePort();
  const config = join(dir, "sshd_config");
  await Deno.writeTextFile(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin yes",
      "StrictModes no",
      "UsePAM no",
      "PidFile none",
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  const child = new Deno.Command(SSHD, {
    args: ["-D", "-e", "-f", config],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  let exited = false;
  const collected = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
  })();
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, 5000);
    try {
      await status;
    } finally {
      clearTimeout(timer);
    }
    // Session processes sshd forked share its stderr; do not wait on them for long.
    let limit: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([collected, new Promise((r) => limit = setTimeout(r, 5000))]);
    clearTimeout(limit);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitForBanner(port, 10_000, () => exited);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}; sshd said:\n${stderr}`);
  }
  return {
    port,
    privateKey: await Deno.readTextFile(userKey),
    dir,
    stop,
    log: () => stderr,
  };
}
