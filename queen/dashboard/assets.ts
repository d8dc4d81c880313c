/**
 * The dashboard's static assets, imported as text so that they live in the module graph: a
 * compiled binary or a bundle carries them, and nothing is read from disk at run time.
 */
import { createHash } from "node:crypto";
// app.js is the browser script bundled from client/*.ts (`scripts/bundle_client.ts`).
import app from "./client/app.js" with { type: "text" };
import style from "./client/style.css" with { type: "text" };

/** One asset: its body, type and a tag that changes with its content. */
export interface Asset {
  body: string;
  type: string;
  etag: string;
}

function asset(body: string, type: string): Asset {
  const hash = createHash("sha256").update(body).digest("base64url").slice(0, 16);
  return { body, type, etag: `"${hash}"` };
}

const JS = "text/javascript; charset=utf-8";

/** Assets by the name they are served under, at `/assets/<name>`. */
export const ASSETS: Readonly<Record<string, Asset>> = {
  "app.js": asset(app, JS),
  "style.css": asset(style, "text/css; charset=utf-8"),
};

/** The URL of an asset, with its tag so that a changed asset is fetched anew. */
export function assetUrl(name: keyof typeof ASSETS & string): string {
  return `/assets/${name}?v=${ASSETS[name].etag.slice(1, 9)}`;
}
