/**
 * The status badge of a project's branch, `/badge/:project/:branch.svg`: an SVG to link from a
 * README, coloured by the branch's latest result. Text is escaped; nothing from the request is
 * put into the SVG but the result word, which comes from a fixed list.
 */

/** The colour per result; text is white on each with a contrast ratio above 4.5. */
export const BADGE_COLOURS: Record<string, string> = {
  passed: "#1a7f37",
  failed: "#c62828",
  errored: "#8e24aa",
  timeout: "#b35900",
  cancelled: "#5f6368",
  lost: "#5f6368",
  unknown: "#5f6368",
};

/** Approximate width of `text` at 11px Verdana, enough to size the badge. */
function textWidth(text: string): number {
  return Math.round(text.length * 6.5 + 10);
}

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The badge for `result` (`unknown` when the branch has no finished job). */
export function badgeSvg(result: string | undefined, label = "build"): string {
  const word = result && result in BADGE_COLOURS ? result : "unknown";
  const colour = BADGE_COLOURS[word];
  const left = textWidth(label);
  const right = textWidth(word);
  const width = left + right;
  const l = escapeXml(label);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="20" role="img" ` +
    `aria-label="${l}: ${word}"><title>${l}: ${word}</title>` +
    `<rect width="${left}" height="20" fill="#555"/>` +
    `<rect x="${left}" width="${right}" height="20" fill="${colour}" data-result="${word}"/>` +
    `<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" ` +
    `text-anchor="middle"><text x="${left / 2}" y="14">${l}</text>` +
    `<text x="${left + right / 2}" y="14">${word}</text></g></svg>`;
}

/** Headers of a badge: short caching, so a README shows a new result within a minute. */
export const BADGE_HEADERS = {
  "content-type": "image/svg+xml; charset=utf-8",
  "cache-control": "public, max-age=60, s-maxage=60",
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
};
