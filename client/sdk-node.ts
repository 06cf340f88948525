// The SDK's Node entry: createIrisClient with a Node transport (gRPC over h2c or TLS by default), for the CLI and scripts.
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createIrisClient, type IrisClient, type IrisClientOptions } from "./sdk.ts";

export * from "./sdk.ts";

export interface NodeIrisClientOptions extends Omit<IrisClientOptions, "transport"> {
  /**
   * "grpc" (default): gRPC over HTTP/2, which streams tokens reliably over cleartext h2c and through
   * HTTP/2 proxies. "connect": the Connect protocol over HTTP/1.1, for proxies that only speak HTTP/1.1.
   */
  protocol?: "grpc" | "connect";
}

export function createNodeIrisClient(options: NodeIrisClientOptions): IrisClient {
  const { protocol = "grpc", ...rest } = options;
  return createIrisClient({
    ...rest,
    transport: ({ baseUrl, interceptors }) =>
      protocol === "grpc"
        ? createGrpcTransport({ baseUrl, interceptors })
        : createConnectTransport({ baseUrl, interceptors, httpVersion: "1.1" }),
  });
}
