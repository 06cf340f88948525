// The cluster bus: how coordinators talk to each other. One interface, two implementations: an in-process bus
// (bus-local.ts; a single coordinator, and tests that put several in one process) and NATS (bus-nats.ts).

/** Hears one message published on a subject. */
export type BusHandler = (data: Uint8Array) => void;
/** Answers one request; what it returns (or resolves with) is the reply. */
export type BusResponder = (data: Uint8Array) => Uint8Array | Promise<Uint8Array>;

export interface Bus {
  /** "local" (in-process) or "nats". */
  readonly kind: "local" | "nats";
  /** Sends to every subscriber of `subject` but the sender's own; fire and forget, in order per sender. */
  publish(subject: string, data: Uint8Array): void;
  /** Hears every message on `subject` (an exact subject, no wildcards); returns the unsubscribe. */
  subscribe(subject: string, handler: BusHandler): () => void;
  /** Answers requests on `subject`; returns the unsubscribe. */
  serve(subject: string, responder: BusResponder): () => void;
  /** One reply from whoever serves `subject`; rejects with BusError ("no-responders" or "timeout"). */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Resolves once the server has every subscription made so far (NATS: a round trip): peers' messages reach them. */
  flush(): Promise<void>;
  /** Stops delivering and closes the connection (NATS: drains first). */
  close(): Promise<void>;
}

/** "too-large": more than the bus takes in one message (NATS's max_payload); it was not sent. */
export type BusErrorKind = "no-responders" | "timeout" | "closed" | "too-large";

export class BusError extends Error {
  override readonly name = "BusError";
  constructor(
    readonly kind: BusErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** The subjects of one cluster (CLUSTER_NAME), so that clusters sharing a NATS server never hear each other. */
export interface ClusterSubjects {
  /** Every home's ClusterView. */
  view: string;
  /** Every coordinator's whole ClusterQueue. */
  queue: string;
  /** Every coordinator's ClusterQueueChange: what changed in its queue since its previous queue message. */
  queueChanges: string;
  /** Every coordinator's ClusterQueueBeat: where its queue stands, every CLUSTER_VIEW_MS. */
  queueBeats: string;
  /** ClusterQueueWanted for the coordinator `instance`: a peer asks for its whole queue. */
  queueWant(instance: string): string;
  /** A coordinator's last word as it stops gracefully (a ClusterView of no nodes): peers fail over at once. */
  left: string;
  /** ClusterViewWanted for the coordinator `instance`: a peer asks for its full view. */
  want(instance: string): string;
  /** ClusterToHome published to the coordinator `instance` (cancels, releases, updates, measurements). */
  home(instance: string): string;
  /** ClusterToHome task assigns to the coordinator `instance`: requests, answered with ClusterAssignReply. */
  assign(instance: string): string;
  /** ClusterFromNode for the coordinator `instance` (it assigned the task). */
  origin(instance: string): string;
}

export function clusterSubjects(clusterName: string): ClusterSubjects {
  return {
    view: `${clusterName}.view`,
    queue: `${clusterName}.queue`,
    queueChanges: `${clusterName}.queue.changes`,
    queueBeats: `${clusterName}.queue.beats`,
    queueWant: (instance) => `${clusterName}.queue.want.${subjectToken(instance)}`,
    left: `${clusterName}.left`,
    want: (instance) => `${clusterName}.want.${subjectToken(instance)}`,
    home: (instance) => `${clusterName}.home.${subjectToken(instance)}`,
    assign: (instance) => `${clusterName}.assign.${subjectToken(instance)}`,
    origin: (instance) => `${clusterName}.origin.${subjectToken(instance)}`,
  };
}

/**
 * An instance name as one subject token: COORDINATOR_INSTANCE defaults to the host name, which may hold dots (a
 * token separator in NATS); base64url has none, nor spaces, '*' or '>'.
 */
export function subjectToken(name: string): string {
  return Buffer.from(name, "utf8").toString("base64url");
}
