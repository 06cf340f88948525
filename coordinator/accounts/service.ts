// AccountService: account keys now; email/password users arrive with the trust work.
import type { ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { AccountService } from "../../gen/iris/v1/account_pb.ts";
import type { Database } from "../db/schema.ts";
import { normalizeAccountKey } from "./keys.ts";
import { createAccount, findAccountId } from "./store.ts";

export function accountService(db: Kysely<Database>): Partial<ServiceImpl<typeof AccountService>> {
  return {
    async generateKey() {
      const { key } = await createAccount(db);
      return { accountKey: key };
    },
    async verifyKey(request) {
      const digits = normalizeAccountKey(request.accountKey);
      return { valid: (await findAccountId(db, digits)) !== undefined };
    },
  };
}
