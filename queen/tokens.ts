import { join } from "node:path";
import { hex } from "../protocol/hex.ts";
import { StartupError } from "./errors.ts";

/** A random token: 32 bytes as hex. */
export function randomToken(): string {
  return hex(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * Returns the token kept in `<dataDir>/<name>`, creating it (mode 0600) when the file does not
 * exist, so that a queen started without tokens is never open and keeps its tokens across
 * restarts. The value is never logged; the file path is.
 */
export async function tokenFromDataDir(dataDir: string, name: string): Promise<string> {
  const path = join(dataDir, name);
  try {
    const text = (await Deno.readTextFile(path)).trim();
    if (text) return text;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const token = randomToken();
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  // The mode above is only for a new file and passes through the umask: say it outright.
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
  return token;
}

/** The tokens a queen accepts, by kind. The lists are changed in place when reloaded. */
export interface TokenSet {
  worker: string[];
  /** Write scope. */
  api: string[];
  /** Everything that may read: write tokens and read-only ones. */
  view: string[];
}

/**
 * Parses a tokens file: one `KIND TOKEN` per line, KIND `worker`, `api` (read and write) or
 * `api-read`; `#` starts a comment. Throws a `StartupError` naming the line of any mistake, and
 * never a word of it: any word may be a token, and the message reaches the queen's log.
 */
export function parseTokensFile(text: string): { worker: string[]; api: string[]; read: string[] } {
  const out = { worker: [] as string[], api: [] as string[], read: [] as string[] };
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [kind, token, extra] = line.split(/\s+/);
    if (!token || extra !== undefined) {
      throw new StartupError(
        `tokens file line ${index + 1}: write 'KIND TOKEN' (one token per line)`,
      );
    }
    const list = kind === "worker"
      ? out.worker
      : kind === "api"
      ? out.api
      : kind === "api-read"
      ? out.read
      : undefined;
    if (!list) {
      // The word is not echoed: in a line written the wrong way round it is the token.
      throw new StartupError(
        `tokens file line ${index + 1}: its first word must be the kind, worker, api or ` +
          "api-read, then the token",
      );
    }
    if (token.length < 16) {
      throw new StartupError(`tokens file line ${index + 1}: a token needs at least 16 characters`);
    }
    list.push(token);
  }
  return out;
}

/** Replaces the contents of `set` with the flags' tokens plus those of the file. */
export function fillTokenSet(
  set: TokenSet,
  flags: { worker: string[]; api: string[] },
  file: { worker: string[]; api: string[]; read: string[] },
): void {
  set.worker.splice(0, Infinity, ...flags.worker, ...file.worker);
  set.api.splice(0, Infinity, ...flags.api, ...file.api);
  set.view.splice(0, Infinity, ...set.api, ...file.read);
}
