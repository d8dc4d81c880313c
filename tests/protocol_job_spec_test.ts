/**
 * The job spec (the seed's "what I'd like to see" plus DESIGN.md's optional fields) and the
 * checks on the names a job hands to git: refs, fetch refspecs and repository URLs.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  fetchRefspecProblem,
  JobSpecSchema,
  refNameProblem,
  repoUrlProblem,
  validate,
} from "../protocol/mod.ts";
import type { JobSpec } from "../protocol/mod.ts";

type Spec = Record<string, unknown>;

/** Validates `spec`, failing the test with zod's message when it is refused. */
function accepted(spec: unknown): JobSpec {
  const result = validate(JobSpecSchema, spec);
  ok(result.ok, result.ok ? "" : result.error);
  return result.value;
}

/** Validates `spec`, failing the test when it is accepted; returns the error message. */
function refused(spec: unknown): string {
  const result = validate(JobSpecSchema, spec);
  equal(result.ok, false, `accepted ${JSON.stringify(spec)}`);
  return result.ok ? "" : result.error;
}

const minimal: Spec = {
  repo: { url: "https://example.com/owner/repo.git" },
  ref: { branch: "main" },
};

/** DESIGN.md's example, with its `...` and `<commit>` placeholders filled in. */
const designExample: Spec = {
  user_id: "u1",
  repo: {
    url: "https://host/owner/repo.git",
    auth: { type: "https", username: "u", password: "p" },
    provider: "github",
    vcs: "git",
  },
  ref: { branch: "main", id: "3f786850e387550fdab836ed7e6dc881de23001b" },
  job_type: "TEST",
  trigger: {
    type: "manual",
    author: { name: "Jared Forsyth" },
    message: "Run the tests",
    timestamp: "2024-05-01T12:00:00Z",
    source: { type: "API", app: "cli" },
  },
  plugins: ["env", "custom"],
  config: { env: { FOO: "1" }, custom: { prepare: "npm ci", test: "npm test" } },
};

const trigger = {
  type: "manual",
  timestamp: "2024-05-01T12:00:00+02:00",
  source: { type: "UI", page: "dashboard" },
};

Deno.test("the DESIGN.md example job spec is valid and keeps every field", () => {
  deepEqual(accepted(designExample), designExample);
});

Deno.test("a minimal job spec gets job type TEST and vcs git by default", () => {
  const spec = accepted(minimal);
  equal(spec.job_type, "TEST");
  equal(spec.repo.vcs, "git");
  equal(spec.trigger, undefined);
});

Deno.test("a repository may authenticate over https or ssh", () => {
  const https = { type: "https", username: "ci", password: "s3cret" };
  const ssh = { type: "ssh", key: "-----BEGIN OPENSSH PRIVATE KEY-----\n...\n" };
  for (const auth of [https, ssh]) {
    deepEqual(accepted({ ...minimal, repo: { url: "git@host:o/r.git", auth } }).repo.auth, auth);
  }
});

Deno.test("a repository auth of the wrong shape is refused naming the field", () => {
  match(refused({ ...minimal, repo: { url: "/srv/r", auth: { type: "ssh" } } }), /repo\.auth\.key/);
  match(
    refused({ ...minimal, repo: { url: "/srv/r", auth: { type: "token", token: "t" } } }),
    /repo\.auth\.type/,
  );
  match(
    refused({ ...minimal, repo: { url: "/srv/r", auth: { type: "https", username: "u" } } }),
    /repo\.auth\.password/,
  );
});

Deno.test("a ref is either a branch with an optional commit id or a fetch refspec", () => {
  const refs = [
    { branch: "main" },
    { branch: "feature/login", id: "abc1234" },
    { fetch: "+refs/pull/141/merge" },
    { fetch: "refs/heads/main:refs/remotes/origin/main" },
  ];
  for (const ref of refs) deepEqual(accepted({ ...minimal, ref }).ref, ref);
});

Deno.test("a ref mixing branch and fetch, or with a commit id that is not hex, is refused", () => {
  match(refused({ ...minimal, ref: { branch: "main", fetch: "refs/x" } }), /ref/);
  match(refused({ ...minimal, ref: { branch: "main", id: "HEAD~1" } }), /ref\.id/);
  match(refused({ ...minimal, ref: {} }), /ref/);
});

Deno.test("every job type is accepted", () => {
  for (const job_type of ["TEST", "DEPLOY", "TEST&DEPLOY"]) {
    equal(accepted({ ...minimal, job_type }).job_type, job_type);
  }
});

Deno.test("a repository may be git or hg", () => {
  for (const vcs of ["git", "hg"]) {
    equal(accepted({ ...minimal, repo: { url: "/srv/repo", vcs } }).repo.vcs, vcs);
  }
  match(refused({ ...minimal, repo: { url: "/srv/repo", vcs: "svn" } }), /repo\.vcs/);
});

Deno.test("a full trigger with an author is accepted from each of the three sources", () => {
  const author = {
    id: "user-1",
    url: "github.com/jaredly",
    name: "Jared Forsyth",
    email: "jared@example.com",
    gravatar: "https://gravatar.example/abc",
    username: "jaredly",
  };
  const sources = [
    { type: "UI", page: "dashboard" },
    { type: "API", app: "cli" },
    { type: "plugin", plugin: "github" },
  ];
  for (const source of sources) {
    const full = {
      type: "commit",
      author,
      message: "Fix the build",
      timestamp: "2024-05-01T12:00:00.123Z",
      url: "https://github.com/o/r/commit/abc",
      source,
    };
    deepEqual(accepted({ ...minimal, trigger: full }).trigger, full);
  }
});

Deno.test("a trigger source of the wrong shape is refused naming the field", () => {
  match(
    refused({ ...minimal, trigger: { ...trigger, source: { type: "UI", app: "cli" } } }),
    /trigger\.source/,
  );
  match(
    refused({ ...minimal, trigger: { ...trigger, source: { type: "cron" } } }),
    /trigger\.source\.type/,
  );
});

Deno.test("a trigger without a timestamp, or with one that is not ISO 8601, is refused", () => {
  const { timestamp: _, ...untimed } = trigger;
  match(refused({ ...minimal, trigger: untimed }), /trigger\.timestamp/);
  match(
    refused({ ...minimal, trigger: { ...trigger, timestamp: "yesterday" } }),
    /trigger\.timestamp/,
  );
});

Deno.test("the optional fields beyond the seed are accepted", () => {
  const extras = {
    timeout: 600,
    labels: ["linux", "x86_64"],
    secrets: { NPM_TOKEN: "abc", _PRIVATE: "x" },
    network: false,
    priority: -10,
    serialize: true,
  };
  const spec = accepted({ ...minimal, ...extras });
  deepEqual({
    timeout: spec.timeout,
    labels: spec.labels,
    secrets: spec.secrets,
    network: spec.network,
    priority: spec.priority,
    serialize: spec.serialize,
  }, extras);
});

Deno.test("optional fields out of range are refused naming the field", () => {
  const cases: [Spec, RegExp][] = [
    [{ timeout: 0 }, /at timeout/],
    [{ timeout: 8 * 24 * 3600 }, /at timeout/],
    [{ timeout: 1.5 }, /at timeout/],
    [{ priority: 1001 }, /at priority/],
    [{ network: "no" }, /at network/],
    [{ serialize: 1 }, /at serialize/],
    [{ labels: ["has space"] }, /at labels\[0\]/],
    [{ plugins: ["-rf"] }, /at plugins\[0\]/],
    [{ secrets: { TOKEN: 42 } }, /at secrets\.TOKEN/],
  ];
  for (const [extra, error] of cases) match(refused({ ...minimal, ...extra }), error);
});

Deno.test("a branch that reads as a command-line option is refused mentioning '-'", () => {
  const error = refused({ ...minimal, ref: { branch: "--upload-pack=evil" } });
  match(error, /ref\.branch/);
  match(error, /'-'/);
});

Deno.test("a fetch refspec not starting with refs/ is refused", () => {
  const error = refused({ ...minimal, ref: { fetch: "pull/141/merge" } });
  match(error, /ref\.fetch/);
  match(error, /refs\//);
});

Deno.test("a repository URL with a javascript: scheme is refused", () => {
  const error = refused({ ...minimal, repo: { url: "javascript:alert(1)" } });
  match(error, /repo\.url/);
  match(error, /javascript:/);
});

Deno.test("a repository URL carrying a password is refused pointing to repo.auth", () => {
  const error = refused({ ...minimal, repo: { url: "https://user:hunter2@host/o/r.git" } });
  match(error, /repo\.url/);
  match(error, /repo\.auth/);
});

Deno.test("an unknown top-level key such as a typo is refused naming the key", () => {
  match(refused({ ...minimal, job_typ: "TEST" }), /job_typ/);
  match(refused({ ...minimal, repo: { url: "/srv/r", branch: "main" } }), /branch/);
});

Deno.test("the legacy job type TEST_ONLY is refused naming job_type", () => {
  match(refused({ ...minimal, job_type: "TEST_ONLY" }), /at job_type/);
});

Deno.test("an environment variable name starting with a digit is refused naming it", () => {
  match(refused({ ...minimal, config: { env: { "1BAD": "x" } } }), /config\.env\.1BAD/);
  match(refused({ ...minimal, secrets: { "1BAD": "x" } }), /secrets\.1BAD/);
});

Deno.test("the custom plugin config holds only the five phases", () => {
  const custom = { environment: "a", prepare: "b", test: "c", deploy: "d", cleanup: "e" };
  deepEqual(accepted({ ...minimal, config: { custom } }).config?.custom, custom);
  match(refused({ ...minimal, config: { custom: { build: "make" } } }), /config\.custom/);
});

Deno.test("config for other plugins passes through unchecked", () => {
  const config = { node: { version: "20" }, env: { A: "1" } };
  deepEqual(accepted({ ...minimal, config }).config, config);
});

Deno.test("a job id that is not a name is refused naming job_id", () => {
  equal(accepted({ ...minimal, job_id: "job-42" }).job_id, "job-42");
  match(refused({ ...minimal, job_id: "../etc/passwd" }), /at job_id/);
});

Deno.test("refNameProblem accepts ordinary branch names", () => {
  for (const name of ["main", "feature/login", "release-1.0", "refs/heads/main", "v2.x"]) {
    equal(refNameProblem(name), undefined, name);
  }
});

Deno.test("refNameProblem refuses what git would refuse, and anything starting with '-'", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["-x", /'-'/],
    ["--upload-pack=evil", /'-'/],
    ["has space", /spaces/],
    ["tab\there", /control/],
    ["a~1", /~/],
    ["a^", /\^/],
    ["a:b", /:/],
    ["a?", /\?/],
    ["a*", /\*/],
    ["a[0]", /\[/],
    ["a\\b", /\\/],
    ["a..b", /'\.\.'/],
    ["a@{1}", /'@\{'/],
    ["a//b", /'\/\/'/],
    ["/a", /'\/'/],
    ["a/", /'\/'/],
    ["a.", /'\.'/],
    ["a.lock", /'\.lock'/],
    [".hidden", /component/],
    ["x/.y", /component/],
  ];
  for (const [name, problem] of cases) {
    const message = refNameProblem(name);
    ok(message, `accepted ${JSON.stringify(name)}`);
    match(message, problem);
  }
});

Deno.test("fetchRefspecProblem accepts refs/ refspecs, forced or with a destination", () => {
  for (
    const spec of [
      "+refs/pull/141/merge",
      "refs/heads/main",
      "refs/merge-requests/7/head",
      "+refs/heads/main:refs/remotes/origin/main",
    ]
  ) {
    equal(fetchRefspecProblem(spec), undefined, spec);
  }
});

Deno.test("fetchRefspecProblem refuses refspecs outside refs/ or with bad names", () => {
  const cases: [string, RegExp][] = [
    ["pull/141/merge", /refs\//],
    ["+", /refs\//],
    ["-refs/heads/main", /refs\//],
    [":refs/heads/main", /refs\//],
    ["refs/heads/main:heads/x", /refs\//],
    ["refs/a:refs/b:refs/c", /at most one ':'/],
    ["refs/heads/../../x", /'\.\.'/],
    ["+refs/heads/*:refs/remotes/origin/*", /\*/],
  ];
  for (const [spec, problem] of cases) {
    const message = fetchRefspecProblem(spec);
    ok(message, `accepted ${JSON.stringify(spec)}`);
    match(message, problem);
  }
});

Deno.test("repoUrlProblem accepts local paths, file, https, ssh, git and scp-like URLs", () => {
  for (
    const url of [
      "/srv/git/repo.git",
      "/tmp/strider test/repo",
      "file:///srv/git/repo.git",
      "https://github.com/owner/repo.git",
      "http://localhost:8080/repo",
      "https://user@github.com/owner/repo.git",
      "ssh://git@github.com:22/owner/repo.git",
      "git://example.com/repo.git",
      "git@github.com:owner/repo.git",
    ]
  ) {
    equal(repoUrlProblem(url), undefined, url);
  }
});

Deno.test("repoUrlProblem refuses options, relative paths, other schemes and passwords", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["-oProxyCommand=touch /tmp/x", /'-'/],
    ["--upload-pack=evil", /'-'/],
    ["relative/path", /absolute path/],
    ["github.com/owner/repo", /absolute path/],
    ["javascript:alert(1)", /javascript:/],
    ["ext::sh -c touch% /tmp/pwned", /ext:/],
    ["ftp://example.com/repo.git", /ftp:/],
    ["https://user:hunter2@github.com/o/r.git", /password/],
    ["https://github.com/o/r\n.git", /control/],
  ];
  for (const [url, problem] of cases) {
    const message = repoUrlProblem(url);
    ok(message, `accepted ${JSON.stringify(url)}`);
    match(message, problem);
  }
});

Deno.test("repoUrlProblem refuses a URL whose user or host would reach ssh as an option", () => {
  for (
    const url of [
      "ssh://-oProxyCommand=touch%20x/repo",
      "ssh://-oProxyCommand=x@host/repo",
      "ssh://git@-oProxyCommand=x/repo",
      "git://-x/repo",
    ]
  ) {
    const message = repoUrlProblem(url);
    ok(message, `accepted ${JSON.stringify(url)}`);
    match(message, /must not start with '-'/);
  }
});

Deno.test("the seed's scheme-less repo.url becomes https; other forms stay as written", () => {
  const seed = accepted({
    ...minimal,
    repo: { url: "github.com/jaredly/jared.git", provider: "github" },
  });
  equal(seed.repo.url, "https://github.com/jaredly/jared.git");
  equal(accepted(seed).repo.url, "https://github.com/jaredly/jared.git", "parses again as stored");
  equal(
    accepted({ ...minimal, repo: { url: "git.example:8443/o/r" } }).repo.url,
    "https://git.example:8443/o/r",
  );
  for (
    const url of ["/srv/repo", "git@github.com:o/r.git", "ssh://git@host/o/r", "file:///srv/r"]
  ) {
    equal(accepted({ ...minimal, repo: { url } }).repo.url, url);
  }
  // Not a host: still refused, never guessed.
  match(refused({ ...minimal, repo: { url: "relative/path" } }), /repo\.url/);
  match(refused({ ...minimal, repo: { url: "-oProxyCommand=x/y" } }), /repo\.url/);
});

Deno.test("a trigger timestamp in epoch milliseconds is accepted and stored as ISO 8601", () => {
  const spec = accepted({ ...minimal, trigger: { ...trigger, timestamp: 1393606800000 } });
  equal(spec.trigger?.timestamp, "2014-02-28T17:00:00.000Z");
  match(refused({ ...minimal, trigger: { ...trigger, timestamp: -1 } }), /trigger\.timestamp/);
  match(refused({ ...minimal, trigger: { ...trigger, timestamp: 1.5 } }), /trigger\.timestamp/);
  match(refused({ ...minimal, trigger: { ...trigger, timestamp: 9e15 } }), /trigger\.timestamp/);
});
