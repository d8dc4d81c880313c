/**
 * Plugins, Strider's unit of job behaviour: each contributes environment variables, PATH
 * entries and, per phase, commands. The built-ins are `env`, `custom`, `node` and `deno`.
 */
import { join } from "node:path";
import type { CacheSpec, Phase, PluginConfig } from "../protocol/mod.ts";

/** One command a plugin asks to run. */
export interface PluginCommand {
  /** The program. */
  command: string;
  args: string[];
  /** What people see instead of the real command line. */
  screen: string;
  /** Hide the output (it may hold something sensitive that is not a declared secret). */
  silent?: boolean;
  /** Variables for this command only. */
  env?: Record<string, string>;
  /** Working directory, relative to the job's checkout. */
  cwd?: string;
  /** Seconds this command may run. */
  timeout?: number;
}

/** What a plugin adds to a job. */
export interface PluginContribution {
  env: Record<string, string>;
  path: string[];
  phases: Partial<Record<Phase, PluginCommand[]>>;
  /** Caches the plugin keeps by default (the job's own `cache` entries come first). */
  cache?: CacheSpec[];
}

/** Where the job's code is, for plugins that look at the repository. */
export interface PluginContext {
  /** The checkout. */
  src: string;
}

/** A plugin: a name and what it contributes for a given job config. */
export interface Plugin {
  name: string;
  contribute(config: PluginConfig, context: PluginContext): PluginContribution;
}

const exists = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};

const sh = (script: string): PluginCommand => ({
  command: "sh",
  args: ["-ec", script],
  screen: script,
});

const nothing = (): PluginContribution => ({ env: {}, path: [], phases: {} });

/** `env`: the variables in `config.env`. */
export const envPlugin: Plugin = {
  name: "env",
  contribute: (config) => ({ ...nothing(), env: { ...config.env } }),
};

/** `custom`: a shell script per phase from `config.custom`, run with `sh -e`. */
export const customPlugin: Plugin = {
  name: "custom",
  contribute(config) {
    const phases: PluginContribution["phases"] = {};
    for (const [phase, script] of Object.entries(config.custom ?? {})) {
      if (!script?.trim()) continue;
      phases[phase as Phase] = [{ ...sh(script), screen: script.trim() }];
    }
    return { ...nothing(), phases };
  },
};

/**
 * `node`: installs dependencies with the package manager the lockfile names (`npm ci`,
 * `yarn install --frozen-lockfile`, `pnpm install --frozen-lockfile`; `npm install` without a
 * lockfile), then runs the package's test script. `config.node.test` replaces the test command.
 * The package manager's download cache is kept, keyed by the lockfile's digest, unless
 * `config.node.cache` is `false`.
 */
export const nodePlugin: Plugin = {
  name: "node",
  contribute(config, { src }) {
    const own = (config.node ?? {}) as { test?: unknown; cache?: unknown };
    const lock = ["pnpm-lock.yaml", "yarn.lock", "package-lock.json", "npm-shrinkwrap.json"]
      .find((name) => exists(join(src, name)));
    const install = lock === "pnpm-lock.yaml"
      ? "pnpm install --frozen-lockfile"
      : lock === "yarn.lock"
      ? "yarn install --frozen-lockfile"
      : lock
      ? "npm ci"
      : "npm install";
    const manager = lock === "pnpm-lock.yaml" ? "pnpm" : lock === "yarn.lock" ? "yarn" : "npm";
    const folder = { pnpm: "~/.local/share/pnpm/store", yarn: "~/.cache/yarn", npm: "~/.npm" };
    const test = typeof own.test === "string" ? own.test : "npm test";
    return {
      ...nothing(),
      path: [join(src, "node_modules", ".bin")],
      phases: { prepare: [sh(install)], test: [sh(test)] },
      cache: own.cache === false ? [] : [{
        key: `node-${manager}-{{ checksum "${lock ?? "package.json"}" }}`,
        paths: [folder[manager]],
      }],
    };
  },
};

/**
 * `deno`: `deno task test` when the project's deno.json(c) has that task, else `deno test`.
 * Deno's module cache (`~/.cache/deno`) is kept, keyed by `deno.lock`'s digest, unless
 * `config.deno.cache` is `false`.
 */
export const denoPlugin: Plugin = {
  name: "deno",
  contribute(config, { src }) {
    const own = (config.deno ?? {}) as { cache?: unknown };
    let hasTask = false;
    for (const name of ["deno.json", "deno.jsonc"]) {
      try {
        // A task named "test" is all that matters; comments in deno.jsonc make JSON.parse fail,
        // so a plain search is the robust check.
        // The worker reads it: only a plain file of the repository (not a link to /dev/zero or
        // to the worker's own files) of a sane size.
        const info = Deno.lstatSync(join(src, name));
        if (!info.isFile || info.size > 1024 * 1024) continue;
        hasTask ||= /"tasks"\s*:\s*\{[^}]*"test"\s*:/s.test(Deno.readTextFileSync(join(src, name)));
      } catch {
        // No such file.
      }
    }
    return {
      ...nothing(),
      phases: { test: [sh(hasTask ? "deno task test" : "deno test")] },
      cache: own.cache === false
        ? []
        : [{ key: 'deno-{{ checksum "deno.lock" }}', paths: ["~/.cache/deno"] }],
    };
  },
};

/** The plugins every worker has. */
export const BUILTIN_PLUGINS: readonly Plugin[] = [envPlugin, customPlugin, nodePlugin, denoPlugin];
