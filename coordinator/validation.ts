// Request validation (protovalidate) for every RPC, with one exception on the hot path: a node's TaskChunk.
// A chunk is checked where it is used, more strictly than its rules could: its task must be one the node was
// given (else it is dropped), its content must be sealed for this session under that task and sequence (AES-GCM
// with associated data; anything else is an invalid response), and its size is bounded by readMaxBytes. Running
// protovalidate on each of them as well cost about a tenth of the coordinator's time at full relay load.
import type { DescMessage } from "@bufbuild/protobuf";
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import type { Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { ConnectRequestSchema, type ConnectRequest } from "../gen/iris/v1/node_pb.ts";

/** Whether a message of `schema` is a node's chunk, which skips protovalidate (see above). */
export function checkedWhereUsed(schema: DescMessage, message: unknown): boolean {
  return schema.typeName === ConnectRequestSchema.typeName && (message as ConnectRequest).message.case === "chunk";
}

export function createValidation(): Interceptor {
  const validator = createValidator();
  const skipping: Validator = {
    validate: ((schema: DescMessage, message: never) =>
      checkedWhereUsed(schema, message) ? { kind: "valid", message, error: undefined, violations: undefined } : validator.validate(schema, message)) as Validator["validate"],
  };
  return createValidateInterceptor({ validator: skipping });
}
