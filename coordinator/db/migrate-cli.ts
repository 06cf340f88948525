// `npm run migrate`: applies pending migrations to DATABASE_URL, or to the embedded PGlite under DATA_DIR.
import { ConfigError, loadConfig } from "../config.ts";
import { openDatabase, pgliteDirectory, redactUrl } from "./connect.ts";
import { migrateToLatest } from "./migrator.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`iris migrate: ${error.message}`);
    return 2;
  }
  const { url, poolSize } = config.database;
  const target = url ? redactUrl(url) : `embedded PGlite in ${pgliteDirectory(config.dataDir)}`;
  let database;
  try {
    database = await openDatabase({ url, poolSize, dataDir: config.dataDir });
  } catch (error) {
    console.error(`iris migrate: ${messageOf(error)}`);
    return 1;
  }
  try {
    console.log(`iris migrate: database ${database.kind}: ${target}`);
    const applied = await migrateToLatest(database.db);
    if (applied.length === 0) console.log("iris migrate: already up to date, nothing applied");
    for (const name of applied) console.log(`iris migrate: applied ${name}`);
    return 0;
  } catch (error) {
    console.error(`iris migrate: ${messageOf(error)}`);
    return 1;
  } finally {
    await database.close();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

process.exitCode = await main();
