// Reflection: in-memory answers per request kind, then grpc-js and `buf curl` against a real h2c socket.
import { execFile } from "node:child_process";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { AccountService } from "../../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../../gen/iris/v1/network_pb.ts";
import { NodeService } from "../../gen/iris/v1/node_pb.ts";
import { Health, HealthStatus, healthRoutes } from "./health.ts";
import { reflectionRoutes } from "./reflection.ts";
import { grpcReflect } from "../../test/support/grpc-js.ts";

const irisServices = [NodeService, InferenceService, AccountService, NetworkService];
const routes = (router: ConnectRouter) => {
  reflectionRoutes([...irisServices, Health])(router);
  healthRoutes(new HealthStatus())(router);
};
const expectedServices = [
  "iris.v1.NodeService",
  "iris.v1.InferenceService",
  "iris.v1.AccountService",
  "iris.v1.NetworkService",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

/** Sends requests on one v1 stream and collects the answers, as a reflection client would. */
async function reflect(...requests: v1.ServerReflectionRequest["messageRequest"][]) {
  const client = createClient(v1.ServerReflection, createRouterTransport(routes));
  const answers: v1.ServerReflectionResponse[] = [];
  async function* send() {
    for (const messageRequest of requests) yield create(v1.ServerReflectionRequestSchema, { messageRequest });
  }
  for await (const answer of client.serverReflectionInfo(send())) answers.push(answer);
  return answers;
}

function decodeFiles(answer: v1.ServerReflectionResponse | undefined): FileDescriptorProto[] {
  if (answer?.messageResponse.case !== "fileDescriptorResponse")
    throw new Error(`not files: ${answer?.messageResponse.case}`);
  return answer.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

describe("reflection in memory", () => {
  it("lists the given services and the reflection services", async () => {
    const [answer] = await reflect({ case: "listServices", value: "" });
    expect(answer?.messageResponse.case).toBe("listServicesResponse");
    const names =
      answer?.messageResponse.case === "listServicesResponse"
        ? answer.messageResponse.value.service.map((s) => s.name)
        : [];
    expect(names.sort()).toEqual([...expectedServices].sort());
  });

  it("returns the file of a service first, then every transitive import once, enough to rebuild it", async () => {
    const files = decodeFiles((await reflect({ case: "fileContainingSymbol", value: "iris.v1.NodeService" }))[0]);
    const names = files.map((f) => f.name);
    expect(names[0]).toBe("iris/v1/node.proto");
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(
      expect.arrayContaining([
        "iris/v1/common.proto",
        "buf/validate/validate.proto",
        "google/protobuf/descriptor.proto",
        "google/protobuf/duration.proto",
        "google/protobuf/timestamp.proto",
      ]),
    );
    // A client builds the schema only from what we sent; a missing import would throw here.
    // Imports come after the file in import-before-importer order, so moving the file last gives a valid set.
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...files.slice(1), files[0]!] }));
    const connect = registry.getService("iris.v1.NodeService")?.methods.find((m) => m.name === "Connect");
    expect(connect?.methodKind).toBe("bidi_streaming");
    expect(registry.getExtension("buf.validate.field")?.number).toBe(1159);
  });

  it.each([
    ["iris.v1.NodeService.Connect", "iris/v1/node.proto"], // method
    ["iris.v1.ConnectRequest", "iris/v1/node.proto"], // message
    ["iris.v1.ConnectRequest.heartbeat", "iris/v1/node.proto"], // field
    ["iris.v1.ConnectRequest.message", "iris/v1/node.proto"], // oneof
    ["iris.v1.Tier", "iris/v1/common.proto"], // enum
    ["iris.v1.TIER_BASIC", "iris/v1/common.proto"], // enum value, scoped beside its enum
    [".iris.v1.Gpu", "iris/v1/common.proto"], // leading dot as in type references
    ["google.protobuf.DescriptorProto.ExtensionRange", "google/protobuf/descriptor.proto"], // nested message
    ["google.protobuf.FieldDescriptorProto.TYPE_STRING", "google/protobuf/descriptor.proto"], // nested enum value
    ["buf.validate.field", "buf/validate/validate.proto"], // extension
    ["grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
    ["grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"],
  ])("finds the file containing %s", async (symbol, file) => {
    const files = decodeFiles((await reflect({ case: "fileContainingSymbol", value: symbol }))[0]);
    expect(files[0]?.name).toBe(file);
  });

  it("answers by file name and by extension", async () => {
    const [byName, byExt] = await reflect(
      { case: "fileByFilename", value: "buf/validate/validate.proto" },
      {
        case: "fileContainingExtension",
        value: create(v1.ExtensionRequestSchema, {
          containingType: "google.protobuf.FieldOptions",
          extensionNumber: 1160,
        }),
      },
    );
    expect(decodeFiles(byName).map((f) => f.name)).toEqual([
      "buf/validate/validate.proto",
      "google/protobuf/descriptor.proto",
      "google/protobuf/duration.proto",
      "google/protobuf/field_mask.proto",
      "google/protobuf/timestamp.proto",
    ]);
    expect(decodeFiles(byExt)[0]?.name).toBe("buf/validate/validate.proto");
  });

  it("lists extension numbers of a type, and none for a type nobody extends", async () => {
    const [field, message] = await reflect(
      { case: "allExtensionNumbersOfType", value: "google.protobuf.FieldOptions" },
      { case: "allExtensionNumbersOfType", value: "iris.v1.Gpu" },
    );
    expect(field?.messageResponse).toEqual({
      case: "allExtensionNumbersResponse",
      value: expect.objectContaining({ baseTypeName: "google.protobuf.FieldOptions", extensionNumber: [1159, 1160] }),
    });
    expect(message?.messageResponse.value).toEqual(expect.objectContaining({ extensionNumber: [] }));
  });

  it("answers unknowns with NOT_FOUND naming the thing, and keeps the stream going", async () => {
    const answers = await reflect(
      { case: "fileContainingSymbol", value: "iris.v1.NoSuchService" },
      { case: "fileByFilename", value: "iris/v1/nope.proto" },
      {
        case: "fileContainingExtension",
        value: create(v1.ExtensionRequestSchema, {
          containingType: "google.protobuf.FieldOptions",
          extensionNumber: 4242,
        }),
      },
      { case: "allExtensionNumbersOfType", value: "iris.v1.Nope" },
      { case: undefined },
      { case: "listServices", value: "" },
    );
    const errors = answers.map((a) =>
      a.messageResponse.case === "errorResponse" ? a.messageResponse.value : undefined,
    );
    expect(errors.map((e) => e?.errorCode)).toEqual([5, 5, 5, 5, 3, undefined]);
    expect(errors[0]?.errorMessage).toContain("iris.v1.NoSuchService");
    expect(errors[1]?.errorMessage).toContain("iris/v1/nope.proto");
    expect(errors[2]?.errorMessage).toContain("4242");
    expect(answers[0]?.originalRequest?.messageRequest).toEqual({
      case: "fileContainingSymbol",
      value: "iris.v1.NoSuchService",
    });
  });

  it("serves v1alpha with the same answers", async () => {
    const client = createClient(v1alpha.ServerReflection, createRouterTransport(routes));
    async function* send() {
      yield create(v1alpha.ServerReflectionRequestSchema, {
        host: "h",
        messageRequest: { case: "fileContainingSymbol", value: "iris.v1.Tier" },
      });
    }
    for await (const answer of client.serverReflectionInfo(send())) {
      expect(answer.validHost).toBe("h");
      expect(answer.messageResponse.case).toBe("fileDescriptorResponse");
      const first =
        answer.messageResponse.case === "fileDescriptorResponse"
          ? answer.messageResponse.value.fileDescriptorProto[0]
          : undefined;
      expect(fromBinary(FileDescriptorProtoSchema, first!).name).toBe("iris/v1/common.proto");
    }
  });
});

describe("reflection over a real h2c socket", () => {
  let server: http2.Http2Server;
  let address: string;
  beforeAll(async () => {
    server = http2.createServer(connectNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const grpcJsReflect = (version: "v1" | "v1alpha", request: object) => grpcReflect(address, version, request);

  it("lists all services to grpc-js over v1 and v1alpha", async () => {
    for (const version of ["v1", "v1alpha"] as const) {
      const answer = await grpcJsReflect(version, { list_services: "" });
      expect(answer.list_services_response.service.map((s: { name: string }) => s.name).sort()).toEqual(
        [...expectedServices].sort(),
      );
    }
  });

  it("gives grpc-js the file of NodeService with its imports, and NOT_FOUND for an unknown symbol", async () => {
    const answer = await grpcJsReflect("v1", { file_containing_symbol: "iris.v1.NodeService" });
    const files = (answer.file_descriptor_response.file_descriptor_proto as Buffer[]).map((b) =>
      fromBinary(FileDescriptorProtoSchema, b),
    );
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        "iris/v1/node.proto",
        "iris/v1/common.proto",
        "buf/validate/validate.proto",
        "google/protobuf/descriptor.proto",
      ]),
    );
    const method = files[0]?.service.find((s) => s.name === "NodeService")?.method.find((m) => m.name === "Connect");
    expect([method?.clientStreaming, method?.serverStreaming]).toEqual([true, true]);

    const missing = await grpcJsReflect("v1", { file_containing_symbol: "iris.v1.Missing" });
    expect(missing.error_response).toEqual({
      error_code: 5,
      error_message: expect.stringContaining("iris.v1.Missing"),
    });
  });

  it("lets `buf curl` list the services through reflection", async () => {
    const { stdout } = await promisify(execFile)("node_modules/.bin/buf", [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-services",
      `http://${address}`,
    ]);
    expect(stdout.trim().split("\n").sort()).toEqual([...expectedServices].sort());
  });

  it("lets `buf curl` list the methods through reflection", async () => {
    const { stdout } = await promisify(execFile)("node_modules/.bin/buf", [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-methods",
      `http://${address}`,
    ]);
    expect(stdout.trim().split("\n")).toEqual(
      expect.arrayContaining(["iris.v1.NodeService/Connect", "grpc.health.v1.Health/Watch"]),
    );
  });
});
