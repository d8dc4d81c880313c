/**
 * The Deno permissions of each role: the one source for the release launchers
 * (scripts/release.ts), the compiled binaries (scripts/compile.ts), the tests' processes and the
 * README's permission table (tests/permissions_test.ts holds deno.json and the README to it).
 * @module
 */

export type Role = "queen" | "worker" | "client";

export interface RolePermissions {
  /** The name shown in the README's table. */
  label: string;
  flags: readonly string[];
  /** Why the role needs these, as the README says it. */
  why: string;
}

const QUEEN = ["--allow-net", "--allow-read", "--allow-write", "--allow-env"] as const;

export const ROLE_PERMISSIONS: Readonly<Record<Role, RolePermissions>> = {
  queen: {
    label: "queen",
    flags: QUEEN,
    why: "serve HTTP and WebSockets; read and write its data folder and tokens; read " +
      "`STRIDER_*` settings. Never `--allow-run`: the queen cannot start a process.",
  },
  worker: {
    label: "worker",
    flags: [...QUEEN, "--allow-run", "--allow-sys"],
    why: "connect to the queen; fetch code and run job commands (`git`, `hg`, `sh`, `bwrap`) in " +
      "per-job workspaces under `--workdir`; read `PATH` and settings; `--allow-sys` for the " +
      "host name used as the default `--name`.",
  },
  client: {
    label: "clients (`submit`, `jobs`, ...)",
    flags: ["--allow-net", "--allow-read", "--allow-write", "--allow-env"],
    why: "call the API; read the token file; write the files `artifacts --out DIR` downloads.",
  },
};

/** The role a command line runs as: `queen`, `worker`, and every other command is a client. */
export function roleOf(command: string | undefined): Role {
  return command === "queen" || command === "worker" ? command : "client";
}

/** The README's permission table rows: `| label | flags | why |`, unpadded. */
export function permissionRows(): string[] {
  return Object.values(ROLE_PERMISSIONS).map((role) =>
    `| ${role.label} | \`${role.flags.join(" ")}\` | ${role.why} |`
  );
}
