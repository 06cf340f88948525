// Values every RPC handler can read from its context: the request id (for logs) and the client's address.
import { createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";

/** The request id: the client's `x-request-id` when it sent one, else generated. */
const requestIdKey = createContextKey<string>("", { description: "request id" });
/** The client's address: the socket's peer, or the first `X-Forwarded-For` hop when TRUST_PROXY is on. */
export const clientAddressKey = createContextKey<string>("", { description: "client address" });

export function requestContextValues(requestId: string, clientAddress: string): ContextValues {
  return createContextValues().set(requestIdKey, requestId).set(clientAddressKey, clientAddress);
}
