import { join } from "node:path";

/** A random token: 32 bytes as hex. */
export function randomToken(): string {
  return [...crypto.getRandomValues(new Uint8Array(32))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
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
  await Deno.mkdir(dataDir, { recursive: true });
  await Deno.writeTextFile(path, token + "\n", { mode: 0o600 });
  return token;
}
