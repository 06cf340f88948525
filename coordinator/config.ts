// The coordinator's configuration: read once from the environment, typed, and validated at start; each concern's
// variables are read in coordinator/config/ and composed here.
import { availableParallelism } from "node:os";
import { EnvReader, type Env } from "../common/env.ts";
import { readAccountSettings, type AccountSettings } from "./config/accounts.ts";
import { readClusterSettings, type ClusterSettings } from "./config/cluster.ts";
import { readNodeSettings, type NodeSettings } from "./config/nodes.ts";
import { readServerSettings, type ServerSettings } from "./config/server.ts";
import { readTaskSettings, type TaskSettings } from "./config/tasks.ts";

/** A wrong configuration value; the message names the variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

export interface Config extends ServerSettings, AccountSettings, NodeSettings, TaskSettings, ClusterSettings {}

/** Reads and validates the configuration; throws ConfigError naming every wrong variable. */
export function loadConfig(env: Env = process.env, cores: number = availableParallelism()): Config {
  const r = new EnvReader(env);
  const server = readServerSettings(r);
  const config: Config = {
    ...server,
    ...readAccountSettings(r),
    ...readNodeSettings(r),
    ...readTaskSettings(r),
    ...readClusterSettings(r, { cores, databaseUrl: server.database.url }),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}
