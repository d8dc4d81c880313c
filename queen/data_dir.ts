/**
 * The queen's data folder holds every job's encrypted secrets, the key that opens them and the
 * tokens: only the queen's user may read it. Modes are set explicitly rather than left to the
 * umask, and wider modes left by an older strider (or a copy) are narrowed on every start.
 */
import { join } from "node:path";
import { StartupError } from "./errors.ts";

/** The files strider keeps in the data folder (others there are left alone). */
export const DATA_FILES = [
  "strider.db",
  "strider.db-wal",
  "strider.db-shm",
  "strider.db-journal",
  "worker-token",
  "api-token",
  "lease-key",
  "secret-key",
  "secret-key.old",
  "secret-key.tmp",
] as const;

const chmodWorks = Deno.build.os !== "windows";

/**
 * Creates `dir` when needed, makes it 0700 and every strider file in it 0600, whatever the
 * umask. Only strider's own files are changed, so a folder shared with other things keeps theirs.
 */
export function secureDataDir(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!chmodWorks) return;
  const chmod = (path: string, mode: number) => {
    try {
      Deno.chmodSync(path, mode);
    } catch (error) {
      throw new StartupError(
        `--data ${dir}: cannot make ${path} private (mode ${mode.toString(8)}): ` +
          `${(error as Error).message}; run the queen as the owner of its data folder`,
      );
    }
  };
  chmod(dir, 0o700);
  for (const name of DATA_FILES) {
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(join(dir, name));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    // A symlink is followed by nobody here: its target is not ours to change.
    if (info.isFile && (info.mode ?? 0) & 0o077) chmod(join(dir, name), 0o600);
  }
}

/** Creates `path` empty with mode 0600 when it does not exist (an existing file is kept). */
export function createPrivateFile(path: string): void {
  using _file = Deno.openSync(path, { create: true, write: true, mode: 0o600 });
  if (chmodWorks) Deno.chmodSync(path, 0o600);
}

/** Writes `text` to `path` (mode 0600) through a temporary file and a rename: never half written. */
export function writePrivateFile(path: string, text: string): void {
  const temp = `${path}.tmp`;
  Deno.writeTextFileSync(temp, text, { mode: 0o600 });
  if (chmodWorks) Deno.chmodSync(temp, 0o600);
  Deno.renameSync(temp, path);
}
