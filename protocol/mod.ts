/**
 * The strider protocol: the single source of truth for every message between the queen, its
 * workers, browsers and API clients. Pure: zod schemas and codecs, no I/O.
 * @module
 */
export * from "./version.ts";
export * from "./limits.ts";
export * from "./refs.ts";
export * from "./trigger.ts";
export * from "./secret_names.ts";
export * from "./job_spec.ts";
export * from "./matrix.ts";
export * from "./shard.ts";
export * from "./build.ts";
export * from "./job_files.ts";
export * from "./artifacts.ts";
export * from "./project.ts";
export * from "./events.ts";
export * from "./attempt_key.ts";
export * from "./job_view.ts";
export * from "./browser.ts";
export * from "./codec.ts";
export * from "./output_frame.ts";
export * from "./json_schema.ts";
export * from "./legacy.ts";
