// Assembles a running coordinator from a validated config: database, migrations, services, server.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { createValidateInterceptor } from "@connectrpc/validate";
import type { Config } from "./config.ts";
import { openDatabase, redactUrl } from "./db/connect.ts";
import type { Database } from "./db/schema.ts";
import { migrateToLatest } from "./db/migrator.ts";
import { createRoutes } from "./routes.ts";
import { startServer, type RunningServer } from "./server.ts";

export interface Coordinator extends RunningServer {
  databaseKind: "postgres" | "pglite";
  /** The coordinator's own database handle (tests read state through it, on either engine). */
  db: Kysely<Database>;
}

export async function startCoordinator(config: Config, logger: Logger): Promise<Coordinator> {
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
  try {
    const applied = await migrateToLatest(database.db, logger);
    logger.info({ applied }, applied.length > 0 ? "migrations applied" : "database schema is up to date");
    const { routes, health } = createRoutes({ db: database.db, logger });
    const server = await startServer({
      config: config.server,
      logger,
      routes,
      interceptors: [createValidateInterceptor()],
      http: (app) => {
        app.get("/healthz", async (_req, reply) => {
          const status = health.overall();
          return reply.code(status === "SERVING" ? 200 : 503).send({ status, database: database.kind });
        });
      },
      onShutdown: () => health.shutDown(),
      onClosed: () => database.close(),
    });
    return { ...server, databaseKind: database.kind, db: database.db };
  } catch (err) {
    await database.close();
    throw err;
  }
}
