// The coordinator's node settings from the environment: how nodes register and are watched, and the monthly pool
// their accounts share.
import type { EnvReader } from "../../common/env.ts";

export interface NodeSettings {
  nodes: {
    heartbeatIntervalMs: number;
    /**
     * How often live nodes' suspensions are read back from the database (SUSPENSION_SYNC_MS; 0: only at registration).
     */
    suspensionSyncMs: number;
    /**
     * How long a NodeService stream has to send its register, and then its register proof (NODE_REGISTER_TIMEOUT_MS).
     */
    registerTimeoutMs: number;
  };
  economics: {
    /** Units distributed each month across accounts (MONTHLY_POOL_UNITS). */
    monthlyPool: number;
    /** How often the month-to-date earnings estimate sent to nodes is recomputed (EARNINGS_ESTIMATE_MS). */
    estimateRefreshMs: number;
  };
}

export function readNodeSettings(r: EnvReader): NodeSettings {
  return {
    nodes: {
      heartbeatIntervalMs: r.int("HEARTBEAT_INTERVAL_MS", 5_000, 100, 600_000),
      suspensionSyncMs: r.int("SUSPENSION_SYNC_MS", 5_000, 0, 3_600_000),
      registerTimeoutMs: r.int("NODE_REGISTER_TIMEOUT_MS", 5_000, 100, 600_000),
    },
    economics: {
      monthlyPool: r.int("MONTHLY_POOL_UNITS", 1_000_000, 0, Number.MAX_SAFE_INTEGER),
      estimateRefreshMs: r.int("EARNINGS_ESTIMATE_MS", 60_000, 100, 86_400_000),
    },
  };
}
