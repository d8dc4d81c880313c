/**
 * A job's phases, in the order they run. Apart from the schemas (and zod) so that the dashboard's
 * browser script can import it, and the job fold with it, without bundling zod.
 */
export const PHASES = ["environment", "prepare", "test", "deploy", "cleanup"] as const;
