// Assembles a running coordinator from a validated config: database, migrations, services, server.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { loadOrCreateKeyFile } from "../common/crypto/key-file.ts";
import type { Config } from "./config.ts";
import { openDatabase, redactUrl } from "./db/connect.ts";
import { createDatabaseFaultInterceptor, unavailableIfDatabase } from "./db/faults.ts";
import type { Database } from "./db/schema.ts";
import { registerChatSseRoutes } from "./http/chat-sse.ts";
import { registerOpenAiRoutes } from "./http/openai.ts";
import { registerPages } from "./http/pages.ts";
import { ChatLimiter } from "./limits/chat-limits.ts";
import { httpCallerResolver } from "./limits/http-caller.ts";
import { migrateToLatest } from "./db/migrator.ts";
import { createAuthInterceptor } from "./accounts/auth.ts";
import { pruneLoginFailures } from "./accounts/login-throttle.ts";
import { startMonthlyPayouts } from "./economics/scheduler.ts";
import { ThroughputMeter } from "./network/throughput.ts";
import { loadFastTracker } from "./reputation/ledger.ts";
import { ReputationRecorder } from "./reputation/recorder.ts";
import { startReputationScheduler } from "./reputation/scheduler.ts";
import { NodeRegistry } from "./nodes/registry.ts";
import { SessionCloser } from "./nodes/session-closer.ts";
import { startNodeMonitor } from "./nodes/monitor.ts";
import { recoverAtStart, startInstanceWatch } from "./instances/liveness.ts";
import { recordMismatch } from "./nodes/suspension.ts";
import { NodeService } from "../gen/iris/v1/node_pb.ts";
import { createRoutes } from "./routes.ts";
import { createChatPipeline } from "./tasks/chat-pipeline.ts";
import type { ClassifierChain } from "./tasks/classify/chain.ts";
import { createCoordinatorClassifier } from "./tasks/classify/links.ts";
import { TaskJournal } from "./tasks/journal.ts";
import { Orchestrator } from "./tasks/orchestrator.ts";
import { EarningsEstimator } from "./economics/estimate.ts";
import { startServer, type RunningServer } from "./server.ts";
import type { Bus } from "./cluster/bus.ts";
import { LocalBus } from "./cluster/bus-local.ts";
import { NatsBus } from "./cluster/bus-nats.ts";
import { startCluster, type Cluster } from "./cluster/cluster.ts";
import { createValidation } from "./validation.ts";

export interface Coordinator extends RunningServer {
  databaseKind: "postgres" | "pglite";
  /** The coordinator's own database handle (tests read state through it, on either engine). */
  db: Kysely<Database>;
  registry: NodeRegistry;
  journal: TaskJournal;
  reputation: ReputationRecorder;
  /** The difficulty classifier chain (its per-link counters: `classifier.stats()`). */
  classifier: ClassifierChain;
  /** This coordinator's part in its cluster (a cluster of one without NATS_URL). */
  cluster: Cluster;
}

export interface CoordinatorOptions {
  /**
   * The cluster bus to use instead of NATS_URL's or a new in-process one (tests put several coordinators on one
   * LocalNetwork).
   */
  bus?: Bus;
}

export async function startCoordinator(
  config: Config,
  logger: Logger,
  options: CoordinatorOptions = {},
): Promise<Coordinator> {
  const database = await openDatabase({
    url: config.database.url,
    poolSize: config.database.poolSize,
    dataDir: config.dataDir,
    logger,
  });
  logger.info(
    { database: database.kind, url: config.database.url ? redactUrl(config.database.url) : undefined },
    database.kind === "pglite" ? "using embedded PostgreSQL (PGlite)" : "using PostgreSQL server",
  );
  let cluster: Cluster | undefined;
  try {
    const applied = await migrateToLatest(database.db, logger);
    logger.info({ applied }, applied.length > 0 ? "migrations applied" : "database schema is up to date");
    const coordinatorKey = await loadOrCreateKeyFile(config.coordinatorPrivateKeyPath);
    logger.info(
      {
        path: config.coordinatorPrivateKeyPath,
        created: coordinatorKey.created,
        publicKey: Buffer.from(coordinatorKey.publicKey).toString("hex"),
      },
      "coordinator key loaded",
    );
    const registry = new NodeRegistry();
    const bus =
      options.bus ??
      (config.cluster.natsUrl
        ? await NatsBus.connect({ servers: config.cluster.natsUrl, name: config.instance, logger })
        : new LocalBus());
    const { name, viewMs, deadAfterMs, assignTimeoutMs } = config.cluster;
    // before the cluster: the answers of nodes its node link asks through other coordinators come back to it
    const classifier = createCoordinatorClassifier(
      { openRouter: config.openRouter, ...config.classifier },
      registry,
      logger,
    );
    cluster = await startCluster({
      bus,
      name,
      viewMs,
      deadAfterMs,
      assignTimeoutMs,
      instance: config.instance,
      registry,
      coordinatorKey,
      logger,
      classifyLink: classifier.nodeLink,
    });
    const earnings = new EarningsEstimator(
      database.db,
      config.economics.monthlyPool,
      config.economics.estimateRefreshMs,
      logger,
    );
    const journal = new TaskJournal(database.db, logger, {
      instance: config.instance,
      maxWaiting: config.recovery.journalMaxWaiting,
      endFlushMs: config.recovery.journalEndFlushMs,
      landed: (earliestEnd) => earnings.landed(earliestEnd),
    });
    const sessions = new SessionCloser(database.db, logger);
    const throughput = new ThroughputMeter();
    const reputation = new ReputationRecorder(journal, await loadFastTracker(database.db), registry, logger);
    const orchestrator = new Orchestrator({
      registry,
      journal,
      classifier: classifier.chain,
      config: { ...config.tasks, queue: config.queue, division: config.division },
      logger,
      throughput,
      outcomes: reputation,
      suspensions: { recordMismatch: (nodeId, suspendAfter) => recordMismatch(database.db, nodeId, suspendAfter) },
      queuePeers: cluster.queue,
    });
    const reputationPeriods = startReputationScheduler({
      db: database.db,
      logger,
      onChange: (nodeId, score) => {
        const node = registry.get(nodeId);
        if (node) node.reputation = score;
      },
    });
    const liveness = { db: database.db, instance: config.instance, logger, ...config.recovery };
    // before this run records any task: what a previous run under this name left unfinished is ended first
    await recoverAtStart(liveness);
    const instances = startInstanceWatch(liveness);
    const monitor = startNodeMonitor({
      db: database.db,
      registry,
      logger,
      heartbeatIntervalMs: config.nodes.heartbeatIntervalMs,
      suspensionSyncMs: config.nodes.suspensionSyncMs,
    });
    const limiter = new ChatLimiter(database.db, config.rateLimits, { logger });
    const resolveCaller = httpCallerResolver({ db: database.db, jwtSecret: config.jwtSecret });
    // every chat entry point (RPCs, /v1/chat/completions, /api/chat/stream) runs this one pipeline
    const chat = createChatPipeline({ db: database.db, orchestrator, limiter });
    const { routes, health, lanes } = createRoutes({
      config,
      db: database.db,
      logger,
      registry,
      sessions,
      orchestrator,
      coordinatorKey,
      throughput,
      classifyLink: cluster.classifyResults,
      chat,
      earnings,
    });
    const payouts = startMonthlyPayouts({ db: database.db, logger, pool: config.economics.monthlyPool });
    const pruneLogins = setInterval(
      () =>
        void pruneLoginFailures(database.db).catch((err: unknown) =>
          logger.error({ err }, "could not prune login failures"),
        ),
      15 * 60_000,
    ).unref();
    const pruneChats = setInterval(
      () => void limiter.prune().catch((err: unknown) => logger.error({ err }, "could not prune chat admissions")),
      60 * 60_000,
    ).unref();
    // database faults outermost, so auth's own lookups become Unavailable too; then auth: an unauthenticated caller is
    // refused before validation or handler work
    const interceptors = [
      createDatabaseFaultInterceptor(),
      createAuthInterceptor({ db: database.db, jwtSecret: config.jwtSecret }),
      createValidation(),
    ];
    const server = await startServer({
      config: config.server,
      logger,
      routes,
      interceptors,
      // agents' and users' plain gRPC streams skip the router's generic pipeline: agents' handler validates its own
      // messages and needs no credential headers (a node proves its key), users' Chat runs the interceptors itself;
      // database faults become Unavailable as the interceptor's do
      lanes: lanes(interceptors),
      laneErrors: unavailableIfDatabase,
      // agents' streams are not user work: shutdown ends them once user requests are done (they reconnect)
      backgroundStreams: [`/${NodeService.typeName}/${NodeService.method.connect.name}`],
      http: (app) => {
        app.get("/healthz", async (_req, reply) => {
          const status = health.overall();
          return reply.code(status === "SERVING" ? 200 : 503).send({ status, database: database.kind });
        });
        // gauges of records waiting for the database (Prometheus text); non-zero only during an outage
        app.get("/metrics", async (_req, reply) =>
          reply
            .type("text/plain; version=0.0.4")
            .send(
              `iris_task_records_waiting ${journal.waiting}\n` +
                `iris_reputation_outcomes_waiting ${reputation.waiting}\n` +
                `iris_node_session_ends_waiting ${sessions.waiting}\n`,
            ),
        );
        registerPages(app);
        registerOpenAiRoutes(app, {
          chat,
          resolveCaller,
          registry,
          logger,
          bodyLimit: config.server.maxMessageBytes,
        });
        registerChatSseRoutes(app, {
          chat,
          resolveCaller,
          bodyLimit: config.server.maxMessageBytes,
        });
      },
      onShutdown: () => health.shutDown(),
      onClosed: async () => {
        // the node streams are closed by now: peers hear that this coordinator's nodes are gone
        await cluster!.stop();
        monitor.stop();
        instances.stop();
        orchestrator.close();
        await reputationPeriods.stop();
        clearInterval(pruneLogins);
        clearInterval(pruneChats);
        await payouts.stop();
        // with the database down these give up after the shutdown timeout; a later start ends what stayed open
        await journal.close(config.server.shutdownTimeoutMs);
        await sessions.close(config.server.shutdownTimeoutMs);
        await reputation.close(config.server.shutdownTimeoutMs);
        await instances.retire();
        await database.close();
      },
    });
    return {
      ...server,
      databaseKind: database.kind,
      db: database.db,
      registry,
      journal,
      reputation,
      classifier: classifier.chain,
      cluster,
    };
  } catch (err) {
    await cluster?.stop();
    await database.close();
    throw err;
  }
}
