// gRPC server reflection (v1 and v1alpha) for Connect routers, so grpcurl and `buf curl` can discover our services.
import { create, createFileRegistry, toBinary } from "@bufbuild/protobuf";
import type { DescFile, DescService, FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";

/** A reflection request as both protocol versions shape it (they are wire-identical). */
type ReflectionRequest = {
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
};

/** The message_response oneof, version-neutral; each version wraps it in its own response type. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** The reflection services always describe themselves too, so a client can reflect on reflection. */
const selfServices: DescService[] = [v1.ServerReflection, v1alpha.ServerReflection];

/** Answers reflection requests from the files of the given services and everything they import. */
class ReflectionIndex {
  readonly serviceNames: string[];
  readonly registry: FileRegistry;
  // Fields, methods, oneofs and enum values are not registry types, but clients ask for them by name.
  readonly #symbols = new Map<string, DescFile>();
  readonly #encoded = new Map<string, Uint8Array>();

  constructor(services: DescService[]) {
    const all = [...services, ...selfServices];
    this.serviceNames = [...new Set(all.map((s) => s.typeName))];
    const files = dependenciesFirst(all.map((s) => s.file));
    this.registry = createFileRegistry(create(FileDescriptorSetSchema, { file: files.map((f) => f.proto) }));
    for (const type of this.registry) {
      this.#symbols.set(type.typeName, type.file);
      const members =
        type.kind === "message" ? [...type.fields, ...type.oneofs] : type.kind === "service" ? type.methods : [];
      for (const m of members) this.#symbols.set(`${type.typeName}.${m.name}`, type.file);
      if (type.kind === "enum") {
        // Enum values live in the scope enclosing the enum (C++ scoping), e.g. iris.v1.TIER_GOLD.
        const scope = type.typeName.slice(0, type.typeName.length - type.name.length);
        for (const v of type.values) this.#symbols.set(`${scope}${v.name}`, type.file);
      }
    }
  }

  answer(request: ReflectionRequest): ReflectionAnswer {
    const req = request.messageRequest;
    switch (req.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.serviceNames.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = this.registry.getFile(req.value);
        return file ? this.#descriptors(file) : notFound(`file "${req.value}" not found`);
      }
      case "fileContainingSymbol": {
        const file = this.#symbols.get(req.value.replace(/^\./, ""));
        return file ? this.#descriptors(file) : notFound(`symbol "${req.value}" not found`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = req.value;
        const extendee = this.registry.getMessage(containingType);
        const ext = extendee && this.registry.getExtensionFor(extendee, extensionNumber);
        return ext
          ? this.#descriptors(ext.file)
          : notFound(`extension ${extensionNumber} of "${containingType}" not found`);
      }
      case "allExtensionNumbersOfType": {
        if (!this.registry.getMessage(req.value)) return notFound(`type "${req.value}" not found`);
        const numbers: number[] = [];
        for (const type of this.registry) {
          if (type.kind === "extension" && type.extendee.typeName === req.value) numbers.push(type.number);
        }
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: req.value, extensionNumber: numbers.sort((a, b) => a - b) },
        };
      }
      default:
        return {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "message_request is not set" },
        };
    }
  }

  /** The file first, then its transitive imports: clients cannot build the file without them. */
  #descriptors(file: DescFile): ReflectionAnswer {
    const files = [file, ...dependenciesFirst(file.dependencies).filter((f) => f !== file)];
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: files.map((f) => this.#encode(f)) } };
  }

  #encode(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }
}

function notFound(errorMessage: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}

/** Every file reachable from the roots, each once, imports before importers (what a FileDescriptorSet needs). */
function dependenciesFirst(roots: DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (seen.has(file.proto.name)) return;
    for (const dep of file.dependencies) visit(dep);
    seen.set(file.proto.name, file);
  };
  roots.forEach(visit);
  return [...seen.values()];
}

/**
 * Routes for grpc.reflection.v1 and v1alpha (grpcurl still asks for v1alpha first on some versions).
 * Lists the given services plus the reflection services; pass `Health` if it is registered.
 */
export function reflectionRoutes(services: DescService[]): (router: ConnectRouter) => void {
  const index = new ReflectionIndex(services);
  return (router) => {
    router.service(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          const messageResponse = index.answer(request);
          yield create(v1.ServerReflectionResponseSchema, {
            validHost: request.host,
            originalRequest: request,
            messageResponse,
          });
        }
      },
    });
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          const messageResponse = index.answer(request);
          yield create(v1alpha.ServerReflectionResponseSchema, {
            validHost: request.host,
            originalRequest: request,
            messageResponse,
          });
        }
      },
    });
  };
}
