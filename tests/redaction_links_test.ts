/**
 * One rule for secret names, shared by the worker's masking and the queen's views (issue 13,
 * item 4), and links that can only be http(s) (item 6): trigger URLs, OSC 8 links in output,
 * and raw logs that a browser never sniffs or runs.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  isHttpUrl,
  isSecretName,
  JobSpecSchema,
  masksNamedValue,
  ProjectSchema,
  TriggerSchema,
} from "../protocol/mod.ts";
import { ansiToHtml } from "../queen/dashboard/output.ts";
import { publicSpec } from "../queen/job_state.ts";
import { logResponse } from "../queen/log_response.ts";
import { patchProject } from "../queen/projects/patch.ts";
import { projectView } from "../queen/projects/view.ts";
import type { JobRecord, Store } from "../queen/store.ts";
import { webhookJobSpec } from "../queen/webhooks/job_spec.ts";

const SECRET_NAMES = [
  "DEPLOY_KEY",
  "AWS_SECRET",
  "AWS_SECRET_ACCESS_KEY",
  "GITHUB_TOKEN",
  "NPM_TOKEN_RO",
  "DB_PASSWORD",
  "password",
  "Api_Key",
  "GOOGLE_CREDENTIALS",
  "PASSWD",
  "SECRET",
  "api-key",
  "apiKey",
  "deploy.token",
];
const PLAIN_NAMES = [
  "PATH",
  "KEYBOARD",
  "MONKEY",
  "TOKENIZER",
  "NODE_ENV",
  "SECRETARY_NAME",
  "keyboardLayout",
];

Deno.test("one rule decides which names are secret, for masking and for the API", () => {
  for (const name of SECRET_NAMES) ok(isSecretName(name), name);
  for (const name of PLAIN_NAMES) ok(!isSecretName(name), name);
  // The worker masks a secret-named value from 6 characters; the API hides every one.
  ok(masksNamedValue("DEPLOY_KEY", "abcdef"));
  ok(!masksNamedValue("DEPLOY_KEY", "abc"));
  ok(!masksNamedValue("PATH", "/usr/bin:/bin"));

  const env = Object.fromEntries(
    [...SECRET_NAMES, ...PLAIN_NAMES].filter((name) => /^[A-Za-z_]\w*$/.test(name))
      .map((name) => [name, `value-of-${name}`]),
  );
  const spec = JobSpecSchema.parse({
    repo: { url: "https://git.example/a/b.git" },
    ref: { branch: "main" },
    config: { env },
  });
  const shown = publicSpec(spec).config!.env!;
  for (const [name, value] of Object.entries(env)) {
    // Whatever the worker would mask, the API never shows.
    if (masksNamedValue(name, value)) equal(shown[name], "***", name);
    else equal(shown[name], value, name);
  }
  deepEqual(publicSpec(publicSpec(spec)), publicSpec(spec), "showing twice changes nothing");

  // A plugin's own config may hold secrets too: a plugin can pass any of it to a command.
  const deploy = publicSpec(JobSpecSchema.parse({
    repo: { url: "https://git.example/a/b.git" },
    ref: { branch: "main" },
    config: { deploy: { apiToken: "tok-123456", region: "eu", hosts: [{ password: "pw-1234" }] } },
  })).config!.deploy;
  deepEqual(deploy, { apiToken: "***", region: "eu", hosts: [{ password: "***" }] });
  equal(spec.config!.env!.DEPLOY_KEY, "value-of-DEPLOY_KEY", "the spec itself is untouched");
});

Deno.test("a project's view hides secret-named config values; sending them back keeps them", () => {
  const project = ProjectSchema.parse({
    name: "team/app",
    repo: { url: "https://git.example/team/app.git" },
    branches: {
      "*": {
        config: {
          env: { DEPLOY_KEY: "real-deploy-key", MODE: "ci" },
          deploy: { api_token: "real-api-token" },
        },
      },
    },
  });
  const view = projectView({ project, createdAt: 1, updatedAt: 2 });
  deepEqual(view.branches["*"].config?.env, { DEPLOY_KEY: "***", MODE: "ci" });
  deepEqual(view.branches["*"].config?.deploy, { api_token: "***" });
  equal(project.branches["*"].config?.env?.DEPLOY_KEY, "real-deploy-key");
  const patched = ProjectSchema.parse(
    patchProject(project, { branches: view.branches } as Record<string, unknown>),
  );
  deepEqual(patched.branches["*"].config, project.branches["*"].config);
});

Deno.test("a trigger URL must be http(s); a webhook's other link is left out", () => {
  const trigger = (url: string) =>
    TriggerSchema.safeParse({
      type: "manual",
      timestamp: "2026-01-01T00:00:00Z",
      source: { type: "API", app: "test" },
      url,
    });
  for (const url of ["https://git.example/a/b/commit/1", "http://localhost:8080/x"]) {
    ok(trigger(url).success, url);
  }
  for (
    const url of [
      "javascript:alert(document.cookie)",
      "JaVaScRiPt:alert(1)",
      " javascript:alert(1)",
      "data:text/html,<script>alert(1)</script>",
      "vbscript:msgbox",
      "//evil.example/x",
      "https:evil",
      "file:///etc/passwd",
    ]
  ) {
    const parsed = trigger(url);
    ok(!parsed.success, url);
    match(parsed.error!.issues[0].message, /must be an http:\/\/ or https:\/\/ URL/);
  }
  for (const url of ["javascript:alert(1)", "https://forge.example/pr/5"]) {
    const made = webhookJobSpec(
      ProjectSchema.parse({ name: "team/app", repo: { url: "https://forge.example/team/app" } }),
      {
        kind: "push",
        repoNames: ["team/app"],
        ref: { branch: "main" },
        branch: "main",
        trigger: {
          type: "commit",
          timestamp: "2026-01-01T00:00:00Z",
          source: { type: "plugin", plugin: "github" },
          url,
        },
      },
    );
    ok(made.ok);
    equal(made.spec.trigger?.url, isHttpUrl(url) ? url : undefined);
    ok(JobSpecSchema.safeParse(made.spec).success);
  }
});

Deno.test("output turns only http(s) OSC 8 links into links", () => {
  const link = (url: string, text: string) => `\x1b]8;;${url}\x1b\\${text}\x1b]8;;\x1b\\`;
  const safe = ansiToHtml(`see ${link("https://docs.example/x?a=1&b=2", "the docs")}\n`);
  match(safe, /<a href="https:\/\/docs\.example\/x\?a=1&amp;b=2">the docs<\/a>/);
  for (const url of ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x"]) {
    const html = ansiToHtml(`click ${link(url, "me")} now\n`);
    ok(!html.includes("<a"), html);
    ok(!html.toLowerCase().includes("javascript:") && !html.includes("data:"), html);
  }
});

Deno.test("a raw log is served with nosniff and a CSP that runs nothing", async () => {
  const log = new TextEncoder().encode("<script>alert(1)</script>\n");
  const store = { readLog: (_id: string, start: number, end: number) => log.slice(start, end) };
  const record = { id: "job-1", logBytes: log.length } as JobRecord;
  for (const range of [undefined, "bytes=0-3", "bytes=900-"]) {
    const response = logResponse(store as unknown as Store, record, range);
    equal(response.headers.get("x-content-type-options"), "nosniff");
    const csp = response.headers.get("content-security-policy") ?? "";
    match(csp, /default-src 'none'/);
    match(csp, /sandbox/);
    match(response.headers.get("content-type") ?? "", /^text\/plain/);
    await response.body?.cancel();
  }
});
