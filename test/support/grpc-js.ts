// An independent gRPC client (@grpc/grpc-js + proto-loader, loading the .proto files npm packages ship).
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const root = fileURLToPath(new URL("../..", import.meta.url));

function load(protoPath: string): any {
  const definition = protoLoader.loadSync(root + protoPath, { keepCase: true, oneofs: true, enums: String });
  return grpc.loadPackageDefinition(definition);
}

/** grpc.health.v1.Health/Check at `address` (host:port, h2c); resolves with the status name. */
export function grpcHealthCheck(address: string, service = ""): Promise<string> {
  const pkg = load("node_modules/grpc-health-check/proto/health/v1/health.proto");
  const client = new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Check({ service }, (err: Error | null, response: { status: string }) => {
      client.close();
      if (err) reject(err);
      else resolve(response.status);
    });
  });
}

/** One request on a grpc.reflection ServerReflectionInfo stream; resolves with the first answer. */
export async function grpcReflect(address: string, version: "v1" | "v1alpha", request: object): Promise<any> {
  const pkg = load(`node_modules/@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`);
  const client = new pkg.grpc.reflection[version].ServerReflection(address, grpc.credentials.createInsecure());
  try {
    const call = client.ServerReflectionInfo();
    const answer = new Promise((resolve, reject) => {
      call.once("data", resolve);
      call.once("error", reject);
    });
    call.write(request);
    call.end();
    return await answer;
  } finally {
    client.close();
  }
}
