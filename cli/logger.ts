/**
 * Diagnostics of the queen and worker roles on stderr: one line of text per message, or with
 * `--log-format json` one JSON object per line for log collectors.
 */

export type LogFormat = "text" | "json";

/** A log function for `role` (e.g. `queen`, `worker build-1`) in `format`. */
export function makeLogger(
  role: string,
  format: LogFormat,
  write: (line: string) => void = (line) => console.error(line),
): (message: string) => void {
  if (format === "json") {
    const [kind, name] = role.split(" ");
    return (message) =>
      write(JSON.stringify({
        time: new Date().toISOString(),
        role: kind,
        ...(name ? { name } : {}),
        msg: message,
      }));
  }
  return (message) => write(`${role}: ${message}`);
}
