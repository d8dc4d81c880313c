/** Upper bounds on the sizes of protocol strings and lists, so no single field can exhaust memory. */
export const LIMITS = {
  /** Names: plugins, labels, drones, environment variables. */
  name: 64,
  /** A repository URL or a local path. */
  url: 4096,
  /** Refs, branch names, fetch refspecs. */
  ref: 512,
  /** Free text such as a trigger message or a shell script. */
  text: 64 * 1024,
  /** One chunk of command output in a single frame. */
  output: 1024 * 1024,
  /** Entries in a list or record (plugins, labels, env, secrets). */
  entries: 256,
  /** A job's timeout, in seconds: one week. */
  timeoutSeconds: 7 * 24 * 3600,
} as const;
