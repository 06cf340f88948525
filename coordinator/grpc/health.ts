// gRPC health checking (grpc.health.v1.Health) backed by a settable per-service status registry.
import { EventEmitter, once } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.ts";

export { Health, ServingStatus };

/** Serving status per service name; "" is the server as a whole, as the gRPC health protocol defines. */
export class HealthStatus {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #changes = new EventEmitter();

  constructor(initial: Record<string, ServingStatus> = { "": ServingStatus.SERVING }) {
    // One listener per open Watch stream; their number is bounded by connections, not by a leak.
    this.#changes.setMaxListeners(0);
    for (const [service, status] of Object.entries(initial)) this.#statuses.set(service, status);
  }

  set(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    this.#changes.emit("change", service);
  }

  /** The status of a service, or undefined if it was never registered. */
  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  all(): ReadonlyMap<string, ServingStatus> {
    return this.#statuses;
  }

  /** Marks every service NOT_SERVING, so load balancers drain us before the listener closes. */
  shutdown(): void {
    for (const service of [...this.#statuses.keys()]) this.set(service, ServingStatus.NOT_SERVING);
  }

  /**
   * The current status, then every change, until `signal` aborts. An unknown service yields
   * SERVICE_UNKNOWN and stays watched, since it may be registered later (the protocol asks for this).
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    let sent: ServingStatus | undefined;
    while (!signal.aborted) {
      // Compare against the live value rather than the event: changes made while the consumer was
      // busy with the previous message would otherwise be lost.
      const current = this.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (current !== sent) {
        sent = current;
        yield current;
        continue;
      }
      try {
        await once(this.#changes, "change", { signal });
      } catch {
        // aborted: a server shutting down ends the stream with its reason (Unavailable), so clients
        // know to reconnect elsewhere; a client that went away reads nothing more anyway
        if (signal.reason instanceof ConnectError) throw signal.reason;
        return;
      }
    }
  }
}

/** Routes for grpc.health.v1.Health answering from `status`. */
export function healthRoutes(status: HealthStatus): (router: ConnectRouter) => void {
  return (router) => {
    router.service(Health, {
      check(request) {
        const current = status.get(request.service);
        if (current === undefined) {
          throw new ConnectError(`service "${request.service}" is not known to the health check`, Code.NotFound);
        }
        return { status: current };
      },
      async *watch(request, ctx) {
        for await (const current of status.watch(request.service, ctx.signal)) {
          yield { status: current };
        }
      },
      list() {
        const statuses = Object.fromEntries(
          [...status.all()].map(([service, s]) => [service, create(HealthCheckResponseSchema, { status: s })]),
        );
        return create(HealthListResponseSchema, { statuses });
      },
    });
  };
}
