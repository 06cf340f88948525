// One node → coordinator message as the agent's parts hand it to the connection's outbox.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectRequestSchema } from "../gen/iris/v1/node_pb.ts";

export type OutgoingMessage = MessageInitShape<typeof ConnectRequestSchema>["message"];
