// Health: the status registry, Check/Watch/List in memory, then grpc-js and `buf curl` against a real h2c socket.
import { execFile } from "node:child_process";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeService } from "../../gen/iris/v1/node_pb.ts";
import { Health, HealthStatus, ServingStatus, healthRoutes } from "./health.ts";
import { reflectionRoutes } from "./reflection.ts";

function memoryClient(status: HealthStatus) {
  return createClient(Health, createRouterTransport(healthRoutes(status)));
}

describe("HealthStatus", () => {
  it("starts with the whole server SERVING and marks everything NOT_SERVING on shutdown", () => {
    const status = new HealthStatus();
    status.set("iris.v1.NodeService", ServingStatus.SERVING);
    expect(status.get("")).toBe(ServingStatus.SERVING);
    status.shutdown();
    expect([...status.all()]).toEqual([
      ["", ServingStatus.NOT_SERVING],
      ["iris.v1.NodeService", ServingStatus.NOT_SERVING],
    ]);
  });

  it("watch yields the current status, every change, and ends when aborted", async () => {
    const status = new HealthStatus();
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    for await (const s of status.watch("", abort.signal)) {
      seen.push(s);
      // Two changes while the consumer is busy: the latest one must still arrive.
      if (seen.length === 1) {
        status.set("", ServingStatus.SERVING);
        status.set("", ServingStatus.NOT_SERVING);
      }
      if (seen.length === 2) setTimeout(() => abort.abort(), 10);
    }
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  }, 5_000);
});

describe("Health in memory", () => {
  it("checks the server, a registered service, and rejects an unknown one with NotFound", async () => {
    const client = memoryClient(
      new HealthStatus({ "": ServingStatus.SERVING, "iris.v1.NodeService": ServingStatus.NOT_SERVING }),
    );
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
    expect((await client.check({ service: "iris.v1.NodeService" })).status).toBe(ServingStatus.NOT_SERVING);
    const error = await client.check({ service: "iris.v1.Nope" }).catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toContain("iris.v1.Nope");
  });

  it("lists every status", async () => {
    const status = new HealthStatus();
    status.set("iris.v1.NodeService", ServingStatus.NOT_SERVING);
    const { statuses } = await memoryClient(status).list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": ServingStatus.SERVING,
      "iris.v1.NodeService": ServingStatus.NOT_SERVING,
    });
  });

  it("watches an unknown service until it appears, then follows its changes", async () => {
    const status = new HealthStatus();
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    for await (const res of memoryClient(status).watch({ service: "later" }, { signal: abort.signal })) {
      seen.push(res.status);
      if (seen.length === 1) status.set("later", ServingStatus.SERVING);
      if (seen.length === 2) status.set("later", ServingStatus.NOT_SERVING);
      if (seen.length === 3) break;
    }
    abort.abort();
    expect(seen).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  }, 5_000);
});

describe("Health over a real h2c socket", () => {
  const status = new HealthStatus();
  let server: http2.Http2Server;
  let address: string;
  beforeAll(async () => {
    const routes = (router: ConnectRouter) => {
      healthRoutes(status)(router);
      reflectionRoutes([NodeService, Health])(router);
    };
    server = http2.createServer(connectNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  function grpcJsClient(): any {
    const def = protoLoader.loadSync("node_modules/grpc-health-check/proto/health/v1/health.proto", {
      keepCase: true,
      enums: String,
    });
    const pkg = grpc.loadPackageDefinition(def) as any;
    return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  }

  it("answers grpc-js Check with SERVING and NOT_FOUND for an unknown service", async () => {
    const client = grpcJsClient();
    try {
      const check = (service: string) =>
        new Promise<any>((resolve, reject) =>
          client.Check({ service }, (err: grpc.ServiceError | null, res: unknown) =>
            err ? reject(err) : resolve(res),
          ),
        );
      expect(await check("")).toEqual({ status: "SERVING" });
      await expect(check("iris.v1.Nope")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    } finally {
      client.close();
    }
  });

  it("streams a change to NOT_SERVING to a grpc-js Watch", async () => {
    const client = grpcJsClient();
    status.set("iris.v1.NodeService", ServingStatus.SERVING);
    const call = client.Watch({ service: "iris.v1.NodeService" });
    try {
      const seen: string[] = [];
      await new Promise<void>((resolve, reject) => {
        call.on("error", reject);
        call.on("data", (res: { status: string }) => {
          seen.push(res.status);
          if (seen.length === 1) status.set("iris.v1.NodeService", ServingStatus.NOT_SERVING);
          if (seen.length === 2) resolve();
        });
      });
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    } finally {
      call.on("error", () => {}); // the cancellation below surfaces as a CANCELLED error event
      call.cancel();
      client.close();
    }
  });

  it("answers `buf curl` Health/Check using the schema from reflection", async () => {
    const bufCurl = async (body: string) => {
      const { stdout } = await promisify(execFile)("node_modules/.bin/buf", [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "-d",
        body,
        `http://${address}/grpc.health.v1.Health/Check`,
      ]);
      return JSON.parse(stdout) as unknown;
    };
    status.set("iris.v1.NodeService", ServingStatus.NOT_SERVING);
    expect(await bufCurl("{}")).toEqual({ status: "SERVING" });
    expect(await bufCurl('{"service":"iris.v1.NodeService"}')).toEqual({ status: "NOT_SERVING" });
  });
});
