/**
 * `git http-backend` behind HTTP basic auth (tests/helpers/git_http_server.ts) in its own
 * process, so that its CGI spawns do not run on the thread of the in-process queen being timed.
 * Usage: `deno run --allow-all scripts/bench/git_http.ts ROOT USER PASSWORD`; prints
 * `listening <origin>` and serves until killed.
 */
import { startGitHttpServer } from "../../tests/helpers/git_http_server.ts";

const [root, username, password] = Deno.args;
const server = startGitHttpServer(root, { username, password });
console.log(`listening ${server.origin}`);
