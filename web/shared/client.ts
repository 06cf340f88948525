// The pages' Iris client: the SDK over connect-web's Connect transport (HTTP/1.1 fetch streaming) to this origin.
import { createConnectTransport } from "@connectrpc/connect-web";
import { createIrisClient, type IrisClient } from "../../client/sdk.ts";

export interface PageCredentials {
  accountKey?: string;
  token?: string;
}

export function pageClient(credentials: PageCredentials = {}): IrisClient {
  return createIrisClient({
    // the pages are served by the coordinator itself: same origin, so no CORS and CSP's connect-src 'self' holds
    baseUrl: location.origin,
    ...credentials,
    transport: (options) => createConnectTransport(options),
  });
}
