/**
 * The rolling-upgrade rule: a queen accepts its own protocol and the one before it, and refuses
 * any other with a message naming both versions and which side to upgrade.
 */
import { equal, match, ok } from "node:assert/strict";
import {
  OLDEST_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  protocolRefusal,
  VERSION,
} from "../protocol/mod.ts";

const queen = { protocol: 3, oldest: 2, version: "0.4.0" };

Deno.test("a queen accepts its protocol and the previous one", () => {
  equal(protocolRefusal(3, "0.4.0", queen), undefined);
  equal(protocolRefusal(2, "0.3.1", queen), undefined);
  equal(OLDEST_PROTOCOL_VERSION, Math.max(1, PROTOCOL_VERSION - 1));
  equal(protocolRefusal(PROTOCOL_VERSION, VERSION), undefined);
  equal(protocolRefusal(OLDEST_PROTOCOL_VERSION, "0.0.0"), undefined);
});

Deno.test("an older worker is told to upgrade itself to the queen's release", () => {
  const message = protocolRefusal(1, "0.2.0", queen);
  equal(
    message,
    "this worker (strider 0.2.0) speaks protocol 1; this queen (strider 0.4.0) accepts " +
      "protocols 2 to 3: upgrade this worker to strider 0.4.0",
  );
});

Deno.test("a newer worker is told to upgrade the queen first", () => {
  const message = protocolRefusal(4, "0.5.0", queen) ?? "";
  match(message, /speaks protocol 4; this queen \(strider 0\.4\.0\) accepts protocols 2 to 3/);
  match(message, /upgrade the queen to strider 0\.5\.0 or newer first, then its workers$/);
  const single = protocolRefusal(2, "0.2.0", { protocol: 1, oldest: 1, version: "0.1.0" }) ?? "";
  match(single, /accepts protocol 1:/);
});

Deno.test("a worker's version string cannot put control characters into the queen's log", () => {
  const message = protocolRefusal(9, "1.0\n[queen] forged line\u001b[2J", queen) ?? "";
  ok(!message.includes("\n") && !message.includes("\u001b"), message);
  match(message, /strider 1\.0\?\[queen\] forged line\?\[2J/);
});
