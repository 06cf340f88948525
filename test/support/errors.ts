// Awaits a call that must fail and returns its ConnectError (fails the test if the call succeeds).
import { ConnectError } from "@connectrpc/connect";

export async function connectFailure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}
