/**
 * strider: a distributed CI job runner. One program, two roles (queen and worker), plus the
 * API client commands. This file only parses the command line and calls one entry point.
 * @module
 */
import { PROTOCOL_VERSION, VERSION } from "./protocol/mod.ts";
import { cancel, consoleOutput, drones, jobs, logs, retry, submit } from "./cli/client_commands.ts";
import type { Output } from "./cli/client_commands.ts";
import { ApiError } from "./cli/api_client.ts";
import { UsageError } from "./cli/options.ts";
import { queen, StartupError, worker } from "./cli/role_commands.ts";
import { artifacts } from "./cli/artifacts_command.ts";
import { builds, shard } from "./cli/build_commands.ts";
import { COMMIT } from "./cli/build_info.ts";

const USAGE = `strider ${VERSION}: a distributed CI job runner

usage:
  strider queen  [--port 3000] [--host 127.0.0.1] [--data ./strider-data] [flags]
  strider worker --connect http://HOST:PORT [--token T] [--capacity 2] [flags]
  strider submit --repo URL [--branch B | --fetch REFSPEC] --test CMD [--follow] [flags]
  strider jobs | drones | logs ID [--follow] | retry ID [--follow] | cancel ID
  strider artifacts ID [PATH] [--out DIR]
  strider builds | ls tests/* | strider shard   (builds: --matrix AXIS=a,b --parallel N)
  strider help | --version

Every command takes --help. Every flag also reads an environment variable, e.g. --port reads
STRIDER_PORT; tokens read STRIDER_WORKER_TOKEN and STRIDER_API_TOKEN.`;

const COMMANDS: Record<string, (args: string[], output: Output) => Promise<number>> = {
  queen,
  worker,
  submit,
  jobs,
  drones,
  logs,
  retry,
  cancel,
  artifacts,
  builds,
  shard,
};

/** Runs the command line `args`; resolves with the exit code. */
export async function main(args: string[], output: Output = consoleOutput): Promise<number> {
  const [command, ...rest] = args;
  if (command === "--version" || command === "-V" || command === "version") {
    const built = COMMIT === "source" ? "from source" : `commit ${COMMIT}`;
    output.out(`strider ${VERSION} (${built}, protocol ${PROTOCOL_VERSION})\n`);
    return 0;
  }
  if (!command || command === "help" || command === "--help" || command === "-h") {
    const topic = rest[0] && COMMANDS[rest[0]];
    if (topic) return await topic(["--help"], output);
    output.out(USAGE + "\n");
    return command ? 0 : 2;
  }
  const run = COMMANDS[command];
  if (!run) {
    output.err(`strider: unknown command '${command}'\n\n${USAGE}\n`);
    return 2;
  }
  try {
    return await run(rest, output);
  } catch (error) {
    if (error instanceof UsageError) {
      output.err(`strider ${command}: ${error.message}\n\n`);
      await run(["--help"], { out: output.err, err: output.err });
      return 2;
    }
    if (error instanceof ApiError || error instanceof StartupError) {
      output.err(`strider ${command}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
