// Who is calling: the principal the auth interceptor puts in every handler's context.
import { createContextKey } from "@connectrpc/connect";

export type Principal =
  | { kind: "anonymous" }
  /** Authenticated by an account key (x-iris-account-key header or the request's account_key field). */
  | { kind: "account"; accountId: string }
  /** Authenticated by a JWT (Authorization: Bearer). */
  | { kind: "user"; userId: string; role: "user" | "admin"; accountId: string | null };

export const principalKey = createContextKey<Principal>({ kind: "anonymous" }, { description: "the caller" });

export function isAdmin(principal: Principal): boolean {
  return principal.kind === "user" && principal.role === "admin";
}
