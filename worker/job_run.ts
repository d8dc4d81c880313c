/**
 * One attempt of one job on this worker: a fresh workspace, the code fetched, then Strider's
 * five phases of plugin commands, every byte of output masked and streamed as `job:*` events.
 */
import { join, resolve } from "node:path";
import type {
  AttemptResult,
  CacheSpec,
  DispatchedJob,
  FanOut,
  JobEventBody,
  Phase,
  PluginConfig,
} from "../protocol/mod.ts";
import { PHASES } from "../protocol/mod.ts";
import { capText } from "../protocol/cap_text.ts";
import { masksNamedValue } from "../protocol/secret_names.ts";
import { findArtifacts } from "./artifacts.ts";
import type { ArtifactSender } from "./artifacts.ts";
import type { CacheStore } from "./cache_store.ts";
import { JobCaches } from "./job_caches.ts";
import type { CacheStep } from "./job_caches.ts";
import { jobBaseEnv, jobUser } from "./job_env.ts";
import { Masker } from "./masking.ts";
import { OutputBatcher } from "./output_batcher.ts";
import { resultOf, shouldRun } from "./phases.ts";
import type { PhaseProgress } from "./phases.ts";
import type { Plugin, PluginCommand } from "./plugins.ts";
import { runCommand } from "./process.ts";
import { repoSettings } from "./repo_settings.ts";
import { DEFAULT_MAX_MEMORY_MIB, DEFAULT_MAX_PROCS, handOver, wrapCommand } from "./sandbox.ts";
import type { Isolation, SandboxSettings } from "./sandbox.ts";
import { fetchCode, fetchScreen } from "./vcs.ts";

/** What a job run needs from its worker. */
export interface JobRunOptions {
  job: DispatchedJob;
  attempt: number;
  workdir: string;
  plugins: ReadonlyMap<string, Plugin>;
  emit: (event: JobEventBody) => void;
  isolation: Isolation;
  /** The sandbox's user and limits under `bwrap` (default: the worker's user, default limits). */
  sandbox?: SandboxSettings;
  /** Between SIGTERM and SIGKILL when a command is stopped. */
  graceMs: number;
  /** Keep the workspace after the job (for debugging); it is removed by default. */
  keepWorkspace?: boolean;
  /** Bytes of output a job may send; past it, a truncation notice and nothing more. */
  outputLimit: number;
  /** Resolves when the job's output may be read on (the queen keeps up); optional. */
  ready?: () => Promise<void>;
  /** Variables `--env-pass` takes from the worker's environment, by name. */
  envPass?: Record<string, string>;
  /** The worker's caches; without it, jobs' `cache` entries are ignored. */
  caches?: CacheStore;
  /** Sends artifacts to the queen; without it, jobs' `artifacts` are ignored. */
  artifacts?: ArtifactSender;
}

/** Cleanup must end even when its commands hang: it gets this long. */
const CLEANUP_LIMIT_MS = 10 * 60_000;

/** Runs one attempt; `run()` resolves with its result once `job:done` is emitted. */
export class JobRun {
  readonly id: string;
  readonly attempt: number;
  readonly #options: JobRunOptions;
  readonly #abort = new AbortController();
  #stopped: "cancelled" | "timeout" | undefined;
  #num = 0;
  #outputBytes = 0;
  #workspace = "";
  #masker = new Masker([]);
  /** The mirror objects the checkout borrows: the sandbox mounts them read-only. */
  #objects: string | undefined;

  constructor(options: JobRunOptions) {
    this.#options = options;
    this.id = options.job.job_id;
    this.attempt = options.attempt;
  }

  get #sandbox(): SandboxSettings {
    return this.#options.sandbox ?? {
      isolation: this.#options.isolation,
      maxProcs: DEFAULT_MAX_PROCS,
      maxMemory: DEFAULT_MAX_MEMORY_MIB * 1024 * 1024,
    };
  }

  /** Stops the running command (SIGTERM, grace, SIGKILL); cleanup still runs. */
  stop(reason: "cancelled" | "timeout"): void {
    if (this.#stopped) return;
    this.#stopped = reason;
    this.#abort.abort();
  }

  async run(): Promise<AttemptResult> {
    const { job, emit } = this.#options;
    emit({ event: "job:started", timestamp: Date.now() });
    const workspace = join(this.#options.workdir, "jobs", `${this.id}.${this.attempt}`);
    const timeout = job.timeout
      ? setTimeout(() => this.stop("timeout"), job.timeout * 1000)
      : undefined;
    let result: AttemptResult;
    let error: string | undefined;
    let fanOut: FanOut | undefined;
    try {
      ({ result, error, fanOut } = await this.#runIn(workspace));
    } catch (e) {
      result = "errored";
      error = `the worker failed to run the job: ${(e as Error).message}`;
    } finally {
      clearTimeout(timeout);
    }
    if (this.#stopped) result = this.#stopped;
    emit({
      event: "job:done",
      timestamp: Date.now(),
      result,
      ...(error ? { error: this.#masker.mask(error) } : {}),
      ...(fanOut && !this.#stopped ? { fan_out: fanOut } : {}),
    });
    if (!this.#options.keepWorkspace) {
      await Deno.remove(workspace, { recursive: true }).catch(() => {});
    }
    return result;
  }

  async #runIn(
    workspace: string,
  ): Promise<{ result: AttemptResult; error?: string; fanOut?: FanOut }> {
    const { job } = this.#options;
    await Deno.remove(workspace, { recursive: true }).catch(() => {});
    this.#workspace = workspace;
    const src = join(workspace, "src");
    const home = join(workspace, "home");
    const tmp = join(workspace, "tmp");
    for (const dir of [home, tmp]) await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const baseEnv = this.#baseEnv(home, tmp);
    this.#masker = new Masker(this.#secretValues(baseEnv));

    // Fetching is the first step of `prepare`.
    const { value: fetched } = await this.#fetch(src, tmp, baseEnv);
    await handOver(this.#sandbox, workspace);
    if (!fetched.ok) {
      // Cleanup always runs; without the code, only plugins the spec itself names are known.
      const named = (job.plugins ?? []).filter((name) => this.#options.plugins.has(name));
      const { env, commands } = this.#contributions(named, job.config ?? {}, baseEnv, src);
      await this.#runPhase("cleanup", commands.cleanup, { cwd: workspace, env });
      return { result: "errored", error: fetched.error };
    }
    baseEnv.STRIDER_COMMIT = fetched.commit;
    this.#objects = fetched.objects;

    const settings = await repoSettings(job, src);
    if (!settings.ok) return { result: "errored", error: settings.error };
    // strider.json asks for a build: the queen makes its jobs on this commit; this one is done.
    if (settings.fanOut) {
      return { result: "passed", fanOut: { ...settings.fanOut, commit: fetched.commit } };
    }
    const missing = settings.plugins.filter((name) => !this.#options.plugins.has(name));
    if (missing.length > 0) {
      return {
        result: "errored",
        error: `plugins not installed on this worker: ${missing.join(", ")}`,
      };
    }
    const { env, commands, cache } = this.#contributions(
      settings.plugins,
      settings.config,
      baseEnv,
      src,
    );
    this.#masker = new Masker(this.#secretValues(env));
    const caches = await JobCaches.prepare(this.#options.caches, [...settings.cache, ...cache], {
      repo: job.repo.url,
      saves: "branch" in job.ref,
      layout: { workspace, src, home },
    });
    if (!caches.ok) return { result: "errored", error: caches.error };

    const progress: PhaseProgress = { jobType: job.job_type, codes: {} };
    for (const phase of PHASES) {
      if (this.#stopped) progress.stopped = this.#stopped;
      if (!shouldRun(phase, progress)) continue;
      if (phase === "prepare") {
        const restores = caches.value.restoreSteps();
        await this.#cacheSteps("prepare", restores);
        // Restored files belong to the worker's user: the sandboxed job user must own them too.
        if (restores.length > 0) await handOver(this.#sandbox, workspace);
      }
      if (phase === "cleanup" && !this.#stopped && settings.artifacts.length > 0) {
        await this.#sendArtifacts(settings.artifacts, src);
      }
      const code = await this.#runPhase(phase, commands[phase], { cwd: src, env });
      progress.codes[phase] = code;
      if (phase === "test" && code === 0 && !this.#stopped) {
        await this.#cacheSteps("test", caches.value.saveSteps());
      }
      if (phase === "test") {
        this.#options.emit({ event: "job:tested", code, timestamp: Date.now() });
      }
      if (phase === "deploy") {
        this.#options.emit({ event: "job:deployed", code, timestamp: Date.now() });
      }
      if ((phase === "test" || phase === "deploy") && commands[phase].length === 0) {
        this.#options.emit({
          event: "job:stderr",
          text: `warning: the ${phase} phase ran nothing\n`,
        });
      }
    }
    if (this.#stopped) progress.stopped = this.#stopped;
    return { result: resultOf(progress) };
  }

  /** The cleared environment every command starts from (DESIGN.md, Security; job_env.ts). */
  #baseEnv(home: string, tmp: string): Record<string, string> {
    const { job, envPass } = this.#options;
    const user = jobUser(this.#sandbox.isolation === "bwrap" ? this.#sandbox.runAs : undefined);
    return jobBaseEnv(job, this.attempt, { home, tmp }, envPass, user);
  }

  /** Every value that must never leave the worker: secrets, credentials, secret-named vars. */
  #secretValues(env: Record<string, string>): string[] {
    const { job } = this.#options;
    const values = Object.values(job.secrets ?? {});
    if (job.repo.auth?.type === "https") values.push(job.repo.auth.password);
    if (job.repo.auth?.type === "ssh") values.push(job.repo.auth.key);
    for (const [name, value] of Object.entries(env)) {
      if (masksNamedValue(name, value)) values.push(value);
    }
    return values;
  }

  async #fetch(src: string, tmp: string, env: Record<string, string>) {
    const { job } = this.#options;
    const screen = fetchScreen(job);
    return await this.#command({ phase: "prepare", screen }, async (out) => {
      const outcome = await fetchCode(job, {
        dir: src,
        tmp,
        cacheDir: join(this.#options.workdir, "cache", "git"),
        note: (text) => out("stderr", text),
        signal: this.#abort.signal,
        run: async (program, args, extra) => {
          let stderr = "";
          let stdout = "";
          const ran = await runCommand(program, args, {
            cwd: tmp,
            env: { ...env, ...extra },
            signal: this.#abort.signal,
            graceMs: this.#options.graceMs,
            ledger: join(this.#options.workdir, "pids"),
            onStdout: (text) => stdout = (stdout + text).slice(-8192),
            onStderr: (text) => {
              stderr = (stderr + text).slice(-8192);
              out("stderr", text);
            },
          });
          return { exitCode: ran.exitCode, stderr: stderr + (ran.error ?? ""), stdout };
        },
      });
      if (!outcome.ok) out("stderr", `${outcome.error}\n`);
      return { exitCode: outcome.ok ? 0 : 1, value: outcome };
    });
  }

  /** Gathers env and per-phase commands from the plugins, in the order the job names them. */
  #contributions(
    names: string[],
    config: PluginConfig,
    baseEnv: Record<string, string>,
    src: string,
  ) {
    const env: Record<string, string> = { ...baseEnv };
    const path: string[] = [];
    const cache: CacheSpec[] = [];
    const commands = Object.fromEntries(PHASES.map((p) => [p, []])) as unknown as Record<
      Phase,
      PluginCommand[]
    >;
    for (const name of names) {
      const contribution = this.#options.plugins.get(name)!.contribute(config, { src });
      Object.assign(env, contribution.env);
      path.push(...contribution.path);
      cache.push(...contribution.cache ?? []);
      for (const phase of PHASES) commands[phase].push(...(contribution.phases[phase] ?? []));
    }
    Object.assign(env, this.#options.job.secrets ?? {});
    if (path.length) env.PATH = [...path, baseEnv.PATH].join(":");
    return { env, commands, cache };
  }

  /** Sends the files `patterns` match to the queen, shown as a command opening `cleanup`. */
  async #sendArtifacts(patterns: string[], src: string): Promise<void> {
    const sender = this.#options.artifacts;
    if (!sender) return;
    await this.#command(
      { phase: "cleanup", screen: `artifacts ${patterns.join(" ")}` },
      async (out) => {
        const { found, notes } = await findArtifacts(src, patterns);
        for (const note of notes) out("stderr", `${note}\n`);
        if (found.length === 0) out("stderr", "no files match\n");
        let sent = 0;
        for (const artifact of found) {
          if (this.#stopped) break;
          try {
            await sender.send(this.id, this.attempt, artifact, this.#abort.signal);
            sent++;
          } catch (error) {
            out("stderr", `not sent '${artifact.path}': ${(error as Error).message}\n`);
          }
        }
        if (found.length) out("stderr", `sent ${sent} of ${found.length} files to the queen\n`);
        return { exitCode: 0, value: undefined };
      },
    );
  }

  /** Shows each cache restore or save as a command of `phase`; they never fail the job. */
  async #cacheSteps(phase: Phase, steps: CacheStep[]): Promise<void> {
    for (const step of steps) {
      await this.#command({ phase, screen: step.screen }, async (out) => {
        out("stderr", `${await step.run()}\n`);
        return { exitCode: 0, value: undefined };
      });
    }
  }

  /** Runs a phase's commands until one fails; returns the phase's exit code. */
  async #runPhase(
    phase: Phase,
    commands: PluginCommand[],
    where: { cwd: string; env: Record<string, string> },
  ): Promise<number> {
    const phaseSignal = phase === "cleanup"
      ? AbortSignal.timeout(CLEANUP_LIMIT_MS)
      : this.#abort.signal;
    for (const command of commands) {
      if (phase !== "cleanup" && this.#stopped) return 1;
      const cwd = command.cwd ? resolve(where.cwd, command.cwd) : where.cwd;
      if (!cwd.startsWith(this.#workspace + "/") && cwd !== this.#workspace) {
        return await this.#refuse(
          phase,
          command.screen,
          `cwd '${command.cwd}' is outside the job's workspace`,
        );
      }
      const limit = command.timeout ? AbortSignal.timeout(command.timeout * 1000) : undefined;
      const signal = limit ? AbortSignal.any([phaseSignal, limit]) : phaseSignal;
      const { exitCode } = await this.#command(
        { phase, screen: command.screen, silent: command.silent },
        async (out) => {
          const env = { ...where.env, ...command.env };
          const wrapped = wrapCommand(this.#sandbox, command, {
            workspace: this.#workspace,
            workdir: this.#options.workdir,
            network: this.#options.job.network !== false,
            cwd,
            path: env.PATH,
            objects: this.#objects,
          });
          const ran = await runCommand(wrapped.program, wrapped.args, {
            uid: wrapped.uid,
            gid: wrapped.gid,
            // A sandbox's PID namespace ends all of a command; without one, the mark does.
            sweep: this.#sandbox.isolation === "none",
            sandboxed: this.#sandbox.isolation === "bwrap",
            cwd,
            env,
            signal,
            graceMs: this.#options.graceMs,
            ledger: join(this.#options.workdir, "pids"),
            onStdout: (text) => out("stdout", text),
            onStderr: (text) => out("stderr", text),
            ready: this.#options.ready,
          });
          if (ran.error) out("stderr", `${ran.error}\n`);
          if (limit?.aborted && !phaseSignal.aborted) {
            out("stderr", `command timed out after ${command.timeout} s\n`);
            // A command over its own time limit times the job out, as the job's limit does.
            if (phase !== "cleanup") this.stop("timeout");
          }
          return { exitCode: ran.exitCode, value: undefined };
        },
      );
      if (exitCode !== 0) return exitCode;
    }
    return 0;
  }

  /** Shows a command that was not run, and why; returns its failing exit code. */
  async #refuse(phase: Phase, screen: string, why: string): Promise<number> {
    const { exitCode } = await this.#command({ phase, screen }, (out) => {
      out("stderr", `not run: ${why}\n`);
      return Promise.resolve({ exitCode: 1, value: undefined });
    });
    return exitCode;
  }

  /** Wraps one shown command: `job:cmd:start`, its masked output, `job:cmd:done`. */
  async #command<T>(
    shown: { phase: Phase; screen: string; silent?: boolean },
    body: (out: (stream: "stdout" | "stderr", text: string) => void) => Promise<
      { exitCode: number; value: T }
    >,
  ): Promise<{ exitCode: number; value: T }> {
    const { emit } = this.#options;
    const num = this.#num++;
    const screencmd = this.#masker.mask(shown.screen);
    emit({
      event: "job:cmd:start",
      num,
      command: screencmd,
      screencmd,
      phase: shown.phase,
      timestamp: Date.now(),
    });
    const batcher = new OutputBatcher(this.#masker, (stream, text) => {
      const room = this.#options.outputLimit - this.#outputBytes;
      if (room <= 0) return;
      const kept = capText(text, room);
      // Cut output ends the job's output: what is left of the room may be too small for the
      // next character, and the notice must come once.
      this.#outputBytes = kept.cut ? this.#options.outputLimit : this.#outputBytes + kept.bytes;
      if (kept.text) {
        emit({
          event: stream === "stdout" ? "job:cmd:stdout" : "job:cmd:stderr",
          num,
          text: kept.text,
        });
      }
      if (kept.cut || this.#outputBytes >= this.#options.outputLimit) {
        emit({
          event: "job:cmd:stderr",
          num,
          text: `\n[strider: output truncated at ${this.#options.outputLimit} bytes; ` +
            "the command keeps running]\n",
        });
      }
    });
    if (shown.silent) batcher.write("stderr", "[strider: output hidden (silent)]\n");
    let outcome: { exitCode: number; value: T };
    try {
      outcome = await body((stream, text) => shown.silent || batcher.write(stream, text));
    } finally {
      batcher.close();
    }
    emit({ event: "job:cmd:done", num, exitCode: outcome.exitCode, timestamp: Date.now() });
    return outcome;
  }
}
