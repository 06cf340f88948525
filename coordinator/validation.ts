// Request validation (protovalidate) for every RPC. NodeService.Connect validates its messages itself
// (validateNodeMessage), so that a node's TaskChunk — the hot path, thousands a second — skips both the rules and
// the interceptor's extra async step per message. A chunk is checked where it is used, more strictly than its rules
// could: its task must be one the node was given (else it is dropped), its content must be sealed for this session
// under that task and sequence (AES-GCM with associated data; anything else is an invalid response), and its size
// is bounded by readMaxBytes. Running protovalidate on each cost about a tenth of the coordinator's time at full
// relay load.
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, violationsToProto } from "@bufbuild/protovalidate";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { ConnectRequestSchema, NodeService, type ConnectRequest } from "../gen/iris/v1/node_pb.ts";

const validator = createValidator();

/**
 * Throws InvalidArgument (with the violations as details, as the interceptor does) unless `message` is valid or a
 * chunk.
 */
export function validateNodeMessage(message: ConnectRequest): void {
  if (message.message.case === "chunk") return;
  const result = validator.validate(ConnectRequestSchema, message);
  if (result.kind === "valid") return;
  const details = [];
  if (result.violations) {
    const [value, desc] = violationsToProto(result.violations);
    details.push({ desc, value });
  }
  throw new ConnectError(result.error.message, Code.InvalidArgument, undefined, details, result.error);
}

/**
 * The first protovalidate rule `message` breaks, for callers that answer in their own shape (the HTTP chat routes
 * check their bodies' ChatParams by the very rules the interceptor enforces on RPCs): the field's path as the proto
 * names it (`messages[0].content`) and what is wrong, in the interceptor's words; undefined when it is valid.
 */
export function firstViolation<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): { field: string; message: string } | undefined {
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return undefined;
  if (result.kind === "error") throw result.error; // the rules themselves failed: the coordinator's fault
  const [violation] = result.violations;
  return violation && { field: pathToString(violation.field), message: `${violation.message} [${violation.ruleId}]` };
}

export function createValidation(): Interceptor {
  const validate = createValidateInterceptor({ validator });
  return (next) => {
    const validated = validate(next);
    return (req) => (req.stream && req.service.typeName === NodeService.typeName ? next(req) : validated(req));
  };
}
