// Registers every Connect service the coordinator serves: Iris's four, gRPC reflection and health.
import type { KeyObject } from "node:crypto";
import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { NetworkService } from "../gen/iris/v1/network_pb.ts";
import { NodeService } from "../gen/iris/v1/node_pb.ts";
import { accountService } from "./accounts/service.ts";
import type { Config } from "./config.ts";
import type { Database } from "./db/schema.ts";
import { Health, HealthStatus, healthRoutes, ServingStatus } from "./grpc/health.ts";
import { reflectionRoutes } from "./grpc/reflection.ts";
import { bidiLane, serverStreamLane, type LaneSpec } from "./grpc/lane.ts";
import type { NodeRegistry } from "./nodes/registry.ts";
import type { SessionCloser } from "./nodes/session-closer.ts";
import { networkService } from "./network/service.ts";
import type { ThroughputMeter } from "./network/throughput.ts";
import { KeyRequestLimiter } from "./limits/key-requests.ts";
import { nodeService, type NodeServiceDeps } from "./nodes/service.ts";
import type { EarningsEstimator } from "./economics/estimate.ts";
import type { ChatPipeline } from "./tasks/chat-pipeline.ts";
import type { Orchestrator } from "./tasks/orchestrator.ts";
import { inferenceService } from "./tasks/service.ts";

/** The services of package iris.v1, in the order reflection lists them. */
export const irisServices = [NodeService, InferenceService, AccountService, NetworkService];

export interface RouteDeps {
  config: Config;
  db: Kysely<Database>;
  logger: Logger;
  registry: NodeRegistry;
  /** Writes node session ends in batches (the coordinator flushes it at shutdown). */
  sessions: SessionCloser;
  orchestrator: Orchestrator;
  coordinatorKey: { privateKey: KeyObject; publicKey: Uint8Array };
  throughput: ThroughputMeter;
  /**
   * Where classify results arriving on node streams go: the cluster's (a peer's assign's answer goes back to it, the
   * rest to the classifier chain's node link).
   */
  classifyLink?: NodeServiceDeps["classifyLink"];
  /** The one chat pipeline (account key, rate limit, orchestrator), shared with the plain HTTP chat routes. */
  chat: ChatPipeline;
  /** This month's earnings so far per account, for nodes' heartbeat acks. */
  earnings?: EarningsEstimator;
}

type AnyLane = LaneSpec<DescMessage, DescMessage>;

export interface Routes {
  routes: (router: ConnectRouter) => void;
  /**
   * The methods also served by the server's lean gRPC lanes: agents' NodeService.Connect (no interceptor: a node
   * proves its key in the stream) and users' InferenceService.Chat, which runs `interceptors` (the router's).
   */
  lanes: (interceptors: readonly Interceptor[]) => AnyLane[];
  /** Health as grpc.health.v1 and /healthz report it. */
  health: { overall(): "SERVING" | "NOT_SERVING"; shutDown(): void };
}

export function createRoutes(deps: RouteDeps): Routes {
  const status = new HealthStatus({
    "": ServingStatus.SERVING,
    ...Object.fromEntries(irisServices.map((service) => [service.typeName, ServingStatus.SERVING])),
  });
  const registerHealth = healthRoutes(status);
  const registerReflection = reflectionRoutes([...irisServices, Health]);
  const nodes = nodeService({
    db: deps.db,
    registry: deps.registry,
    logger: deps.logger,
    heartbeatIntervalMs: deps.config.nodes.heartbeatIntervalMs,
    registerTimeoutMs: deps.config.nodes.registerTimeoutMs,
    coordinatorInstance: deps.config.instance,
    sessions: deps.sessions,
    coordinatorKey: deps.coordinatorKey,
    classifyLink: deps.classifyLink,
    earnings: deps.earnings,
  });
  const inference = inferenceService({ chat: deps.chat, registry: deps.registry });
  return {
    lanes: (interceptors) => [
      bidiLane(NodeService.method.connect, nodes.connect) as AnyLane,
      serverStreamLane(InferenceService.method.chat, inference.chat, interceptors) as AnyLane,
    ],
    routes(router) {
      // Methods not implemented yet answer Unimplemented (connect-es does this for partial services).
      router.service(NodeService, nodes);
      router.service(InferenceService, inference);
      router.service(
        AccountService,
        accountService({
          db: deps.db,
          jwt: { secret: deps.config.jwtSecret },
          adminEmails: deps.config.adminEmails,
          logger: deps.logger,
          keyLimits: new KeyRequestLimiter(deps.config.keyRateLimits),
        }),
      );
      router.service(
        NetworkService,
        networkService({
          db: deps.db,
          registry: deps.registry,
          orchestrator: deps.orchestrator,
          tokensPerSecond: () => deps.throughput.rate(),
        }),
      );
      registerHealth(router);
      registerReflection(router);
    },
    health: {
      overall: () => (status.get("") === ServingStatus.SERVING ? "SERVING" : "NOT_SERVING"),
      shutDown: () => status.shutdown(),
    },
  };
}
