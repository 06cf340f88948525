// The dashboard's admin corner: sign in (AccountService.Login), keep the token for the tab, show ListPayouts.
import { Code, ConnectError } from "@connectrpc/connect";
import { pageClient } from "../shared/client.ts";
import { renderPayouts } from "./tables.ts";

// Session storage: an admin token lives as long as the tab, not across browser restarts.
const TOKEN_STORAGE = "iris.adminToken";
const EMAIL_STORAGE = "iris.adminEmail";

export interface AdminElements {
  form: HTMLFormElement;
  email: HTMLInputElement;
  password: HTMLInputElement;
  message: HTMLElement;
  panel: HTMLElement;
  who: HTMLElement;
  signOut: HTMLButtonElement;
  payouts: HTMLTableSectionElement;
}

function loginFailure(err: unknown): string {
  const e = ConnectError.from(err);
  switch (e.code) {
    case Code.Unauthenticated:
      return "Email or password is wrong.";
    case Code.ResourceExhausted:
      return `Too many attempts: ${e.rawMessage}`;
    case Code.FailedPrecondition:
      return "Sign-in is not enabled on this coordinator (it has no JWT_SECRET).";
    case Code.InvalidArgument:
      return "Enter an email address and a password.";
    default:
      return `Could not sign in: ${e.rawMessage}`;
  }
}

export function setupAdmin(el: AdminElements): void {
  function show(signedIn: boolean): void {
    el.form.hidden = signedIn;
    el.panel.hidden = !signedIn;
  }

  function signOut(message = ""): void {
    sessionStorage.removeItem(TOKEN_STORAGE);
    sessionStorage.removeItem(EMAIL_STORAGE);
    el.payouts.replaceChildren();
    el.message.textContent = message;
    show(false);
  }

  async function loadPayouts(token: string): Promise<void> {
    try {
      const { payouts } = await pageClient({ token }).network.listPayouts({});
      renderPayouts(el.payouts, payouts);
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.Unauthenticated) signOut("Your session has ended; sign in again.");
      else if (e.code === Code.PermissionDenied) signOut("This account is not an admin.");
      else el.who.textContent = `Could not load payouts: ${e.rawMessage}`;
    }
  }

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    el.message.textContent = "Signing in…";
    void (async () => {
      try {
        const { token } = await pageClient().accounts.login({
          email: el.email.value.trim(),
          password: el.password.value,
        });
        el.password.value = "";
        if (token?.role !== "admin")
          return signOut("Signed in, but this account is not an admin: payouts are for admins.");
        sessionStorage.setItem(TOKEN_STORAGE, token.accessToken);
        sessionStorage.setItem(EMAIL_STORAGE, el.email.value.trim());
        el.message.textContent = "";
        el.who.textContent = `Signed in as ${el.email.value.trim()} (admin)`;
        show(true);
        await loadPayouts(token.accessToken);
      } catch (err) {
        el.message.textContent = loginFailure(err);
      }
    })();
  });

  el.signOut.addEventListener("click", () => signOut());

  const token = sessionStorage.getItem(TOKEN_STORAGE);
  if (token) {
    el.who.textContent = `Signed in as ${sessionStorage.getItem(EMAIL_STORAGE) ?? "an admin"} (admin)`;
    show(true);
    void loadPayouts(token);
  } else {
    show(false);
  }
}
