/** The page frame every dashboard page shares: head, header with navigation and sign-in state. */
import type { Child } from "hono/jsx";
import { assetUrl } from "./assets.ts";
import { CSRF_FIELD } from "./session.ts";
import type { Session } from "./session.ts";

/** What every page knows about the request. */
export interface PageContext {
  /** The path of the page, for the login link to come back to. */
  path: string;
  session?: Session;
}

/** The hidden field that carries the CSRF token in a form. */
export function CsrfField(props: { session: Session }) {
  return <input type="hidden" name={CSRF_FIELD} value={props.session.csrf} />;
}

/** A page: title, the shared header, and `children` as its main content. */
export function Layout(props: { ctx: PageContext; title: string; children?: Child }) {
  const { ctx } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · strider`}</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={assetUrl("style.css")} />
        {ctx.session && <meta name="csrf-token" content={ctx.session.csrf} />}
        <script type="module" src={assetUrl("app.js")}></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">strider</a>
          <nav aria-label="Main">
            <a href="/">Overview</a>
            <a href="/projects">Projects</a>
            <a href="/run">Run a job</a>
          </nav>
          <div class="auth">
            {ctx.session
              ? (
                <form method="post" action="/logout">
                  <CsrfField session={ctx.session} />
                  <button type="submit" class="link">Log out</button>
                </form>
              )
              : <a href={`/login?next=${encodeURIComponent(ctx.path)}`}>Log in</a>}
          </div>
        </header>
        <main id="main" tabindex={-1}>{props.children}</main>
      </body>
    </html>
  );
}

/** A note that an action needs the API token, with the way to log in. */
export function LoginNote(props: { ctx: PageContext; what: string }) {
  return (
    <p class="note">
      <a href={`/login?next=${encodeURIComponent(props.ctx.path)}`}>Log in</a> with the API token to
      {" "}
      {props.what}.
    </p>
  );
}

/** A page that says what went wrong and links back to the overview. */
export function ProblemPage(props: { ctx: PageContext; title: string; text: string }) {
  return (
    <Layout ctx={props.ctx} title={props.title}>
      <h1>{props.title}</h1>
      <p>{props.text}</p>
      <p>
        <a href="/">Back to the overview</a>
      </p>
    </Layout>
  );
}
