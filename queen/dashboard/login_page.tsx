/** `/login`: the API token, entered once, becomes a session cookie. */
import { Layout } from "./layout.tsx";
import type { PageContext } from "./layout.tsx";

/** The login form; `problem` says why the last try failed. */
export function LoginPage(props: { ctx: PageContext; next: string; problem?: string }) {
  return (
    <Layout ctx={props.ctx} title="Log in">
      <h1>Log in</h1>
      <p>
        Viewing needs no token{props.ctx.session ? "" : " unless the queen runs with --private"};
        running, cancelling and re-running jobs need the queen's API token. It is kept in an
        HttpOnly cookie on this browser for 30 days.
      </p>
      {props.problem && <p class="alert" role="alert">{props.problem}</p>}
      <form method="post" action="/login" class="login-form">
        <input type="hidden" name="next" value={props.next} />
        {/* Lets password managers file the token under this queen. */}
        <input type="text" name="username" value="strider" autocomplete="username" hidden />
        <div class="field">
          <label for="login-token">API token</label>
          <input
            id="login-token"
            name="token"
            type="password"
            required
            autocomplete="current-password"
            aria-describedby="login-token-hint"
          />
          <small id="login-token-hint">
            Given with --api-token, or found in the queen's data folder as api-token
          </small>
        </div>
        <button type="submit" class="primary">Log in</button>
      </form>
    </Layout>
  );
}
