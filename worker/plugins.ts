/**
 * Plugins, Strider's unit of job behaviour: each contributes environment variables, PATH
 * entries and, per phase, commands. The built-ins here are `env` and `custom`.
 */
import type { Phase, PluginConfig } from "../protocol/mod.ts";

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
}

/** A plugin: a name and what it contributes for a given job config. */
export interface Plugin {
  name: string;
  contribute(config: PluginConfig): PluginContribution;
}

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
      phases[phase as Phase] = [{ command: "sh", args: ["-ec", script], screen: script.trim() }];
    }
    return { ...nothing(), phases };
  },
};

/** The plugins every worker has. */
export const BUILTIN_PLUGINS: readonly Plugin[] = [envPlugin, customPlugin];
