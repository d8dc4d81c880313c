/// <reference lib="dom" />
/**
 * The numbered log page (`/jobs/:id/log`): highlights the line or range in the address
 * (`#L120` or `#L120-L140`, which survive a reload), fetches the window that holds it when it is
 * not on the page, and makes shift-click on a line number extend the range.
 */

const RANGE = /^#L(\d+)(?:-L(\d+))?$/;

/** The range in `hash`, first ≤ last, or null. */
export function rangeOf(hash: string): [number, number] | null {
  const m = hash.match(RANGE);
  if (!m) return null;
  const a = Number(m[1]);
  const b = m[2] ? Number(m[2]) : a;
  return [Math.min(a, b), Math.max(a, b)];
}

function highlight(pre: HTMLElement): void {
  for (const el of pre.querySelectorAll(".line.hl")) el.classList.remove("hl");
  const range = rangeOf(location.hash);
  if (!range) return;
  const [a, b] = range;
  const first = Number(pre.dataset.first);
  const last = Number(pre.dataset.last);
  if (a < first || a > last) {
    // Not in this window: load the one around it, keeping the range in the address.
    const url = new URL(location.href);
    url.searchParams.set("line", String(a));
    url.searchParams.delete("cursor");
    location.replace(url.toString());
    return;
  }
  for (let n = a; n <= Math.min(b, last); n++) {
    document.getElementById(`L${n}`)?.classList.add("hl");
  }
  document.getElementById(`L${a}`)?.scrollIntoView({ block: "center" });
}

/** Starts the log page's behaviour when the page is one. */
export function followLogPage(): void {
  const pre = document.getElementById("log-lines");
  if (!pre) return;
  let anchor: number | null = rangeOf(location.hash)?.[0] ?? null;
  pre.addEventListener("click", (event) => {
    const link = (event.target as Element).closest<HTMLAnchorElement>("a.ln");
    if (!link) return;
    const n = Number(link.textContent);
    event.preventDefault();
    const hash = event.shiftKey && anchor !== null
      ? `#L${Math.min(anchor, n)}-L${Math.max(anchor, n)}`
      : `#L${n}`;
    if (!event.shiftKey) anchor = n;
    history.replaceState(null, "", hash);
    highlight(pre);
  });
  addEventListener("hashchange", () => highlight(pre));
  highlight(pre);
}
