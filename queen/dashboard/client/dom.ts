/// <reference lib="dom" />
/** Small DOM helpers of the dashboard's browser script. */

/** The markup of a queen component (hono/jsx renders to a string here as on the queen). */
export function fragment(node: unknown): DocumentFragment {
  const template = document.createElement("template");
  template.innerHTML = String(node);
  return template.content;
}

/** Replaces `el` with the component `node` rendered. */
export function replaceWith(el: Element | null | undefined, node: unknown): void {
  el?.replaceWith(fragment(node));
}

/** The session's CSRF token, when signed in. */
export const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ??
  "";

/** Shows (or, with "", hides) the page's message line. */
export function showMessage(text: string): void {
  const box = document.querySelector<HTMLElement>('[data-field="message"]');
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}
