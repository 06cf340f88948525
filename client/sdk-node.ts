// The SDK's Node entry: createIrisClient with a Node transport (gRPC over h2c or TLS by default), for the CLI and
// scripts.
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { trustedWith } from "../common/ca-file.ts";
import { createIrisClient, type IrisClient, type IrisClientOptions } from "./sdk.ts";

export * from "./sdk.ts";

export interface NodeIrisClientOptions extends Omit<IrisClientOptions, "transport"> {
  /**
   * "grpc" (default): gRPC over HTTP/2, which streams tokens reliably over cleartext h2c and through
   * HTTP/2 proxies. "connect": the Connect protocol over HTTP/1.1, for proxies that only speak HTTP/1.1.
   */
  protocol?: "grpc" | "connect";
  /**
   * PEM certificates of a private CA to trust beside Node's bundled roots, for a coordinator whose certificate no
   * public CA signed (the CLI's --ca / IRIS_CA_PATH; readCaFile in common/ca-file.ts reads such a file).
   */
  ca?: string[];
}

export function createNodeIrisClient(options: NodeIrisClientOptions): IrisClient {
  const { protocol = "grpc", ca, ...rest } = options;
  const nodeOptions = ca ? { ca: trustedWith(ca) } : undefined;
  return createIrisClient({
    ...rest,
    transport: ({ baseUrl, interceptors }) =>
      protocol === "grpc"
        ? createGrpcTransport({ baseUrl, interceptors, nodeOptions })
        : createConnectTransport({ baseUrl, interceptors, httpVersion: "1.1", nodeOptions }),
  });
}
