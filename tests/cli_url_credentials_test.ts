/**
 * A URL flag refused for its credentials, or malformed, is quoted without them: the refusal is
 * printed, and logged wherever the service's output is kept.
 */
import { equal, match, ok, rejects } from "node:assert/strict";
import type { Output } from "../cli/client_commands.ts";
import { queen, worker } from "../cli/role_commands.ts";
import { shownUrl } from "../cli/shown_url.ts";

const SECRET = "hunter2-0123456789";
const quiet: Output = { out: () => {}, err: () => {} };

/** The refusal's message, checked to hold no trace of the password. */
async function refusal(run: Promise<number>, pattern: RegExp): Promise<void> {
  await rejects(run, (error: Error) => {
    match(error.message, pattern);
    ok(!error.message.includes(SECRET), `the refusal quotes the password: ${error.message}`);
    return true;
  });
}

Deno.test("shownUrl hides user and password, and only those", () => {
  equal(shownUrl(`https://ci:${SECRET}@ci.example.com/x?y=1`), "https://***@ci.example.com/x?y=1");
  equal(shownUrl(`postgres://strider:${SECRET}@db/strider`), "postgres://***@db/strider");
  equal(shownUrl("http://10.0.0.1:3000"), "http://10.0.0.1:3000");
  equal(shownUrl("https://host/path@v1"), "https://host/path@v1");
  equal(shownUrl("not a url"), "not a url");
});

Deno.test("queen and worker URL flags refuse credentials without printing them", async () => {
  const data = await Deno.makeTempDir({ prefix: "strider-cli-" });
  try {
    await refusal(
      queen(["--data", data, "--public-url", `https://ci:${SECRET}@ci.example.com`], quiet),
      /--public-url must be an http\(s\) URL without credentials, not 'https:\/\/\*\*\*@ci/,
    );
    await refusal(
      queen(["--data", data, "--peer-url", `http://q:${SECRET}@10.0.0.1:3000/x`], quiet),
      /--peer-url must be http\(s\):\/\/HOST:PORT/,
    );
    await refusal(
      queen(["--data", data, "--peer-url", `http://q:${SECRET}@10.0.0.1:3000`], quiet),
      /--peer-url must be http\(s\):\/\/HOST:PORT without a user or password, .* not 'http:\/\/\*\*\*@10\.0\.0\.1:3000'/,
    );
  } finally {
    await Deno.remove(data, { recursive: true });
  }
  await refusal(
    worker(["--connect", `https://w:${SECRET}@127.0.0.1:9`, "--token", "t".repeat(20)], quiet),
    /--connect must not carry credentials \('https:\/\/\*\*\*@127\.0\.0\.1:9'\)/,
  );
  await refusal(
    worker(["--connect", `htps://w:${SECRET}@127.0.0.1:9`, "--token", "t".repeat(20)], quiet),
    /--connect must be an http:\/\/ or https:\/\/ URL/,
  );
});
