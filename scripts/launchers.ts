/**
 * The `strider` (sh) and `strider.cmd` (Windows) launchers of a release archive: they run the
 * bundled strider.js on the Deno runtime beside them with exactly the permissions of the role the
 * command plays, taken from cli/permissions.ts.
 * @module
 */
import { ROLE_PERMISSIONS } from "../cli/permissions.ts";
import { QUEEN_V8_FLAGS } from "../cli/runtime_flags.ts";

const flags = (role: keyof typeof ROLE_PERMISSIONS) => ROLE_PERMISSIONS[role].flags.join(" ");

/**
 * Options every launcher passes to `deno run`: never prompt for a permission (a service has no
 * one to answer), and never read a deno.json from the folder it is started in.
 */
export const RUN_OPTIONS = ["--no-prompt", "--no-config"];

/** The POSIX sh launcher; it follows symlinks, so `PREFIX/bin/strider` may point to it. */
export function shLauncher(): string {
  return `#!/bin/sh
# strider launcher, written by scripts/release.ts from cli/permissions.ts: runs strider.js on the
# Deno runtime beside it with exactly the permissions of the role the command plays.
set -e
# Where this file really is (PREFIX/bin/strider is a symlink to it), with shell built-ins only
# but readlink.
self=$0
case $self in */*) ;; *) self=./$self ;; esac
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in
    /*) self=$link ;;
    *) self=\${self%/*}/$link ;;
  esac
done
here=$(CDPATH= cd -- "\${self%/*}" && pwd -P)
case \${1-} in
  queen) flags="${flags("queen")} ${QUEEN_V8_FLAGS.join(" ")}" ;;
  worker) flags="${flags("worker")}" ;;
  *) flags="${flags("client")}" ;;
esac
DENO_NO_UPDATE_CHECK=1
export DENO_NO_UPDATE_CHECK
# $flags is unquoted on purpose: one word per flag.
exec "$here/deno" run ${RUN_OPTIONS.join(" ")} $flags "$here/strider.js" "$@"
`;
}

/** The Windows launcher, with CRLF line ends as cmd.exe expects. */
export function cmdLauncher(): string {
  return [
    "@echo off",
    "rem strider launcher, written by scripts/release.ts from cli/permissions.ts: runs strider.js",
    "rem on the Deno runtime beside it with exactly the permissions of the role the command plays.",
    "setlocal",
    'set "DENO_NO_UPDATE_CHECK=1"',
    `set "_flags=${flags("client")}"`,
    `if "%~1"=="queen" set "_flags=${flags("queen")} ${QUEEN_V8_FLAGS.join(" ")}"`,
    `if "%~1"=="worker" set "_flags=${flags("worker")}"`,
    `"%~dp0deno.exe" run ${RUN_OPTIONS.join(" ")} %_flags% "%~dp0strider.js" %*`,
    "exit /b %ERRORLEVEL%",
    "",
  ].join("\r\n");
}
