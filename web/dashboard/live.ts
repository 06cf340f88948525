// Keeps a NetworkService.WatchStats stream open for the dashboard, reconnecting with backoff whenever it ends.
import { ConnectError } from "@connectrpc/connect";
import type { IrisClient } from "../../client/sdk.ts";
import type { NetworkStats } from "../../gen/iris/v1/network_pb.ts";

export type LiveStatus =
  | { state: "connecting" }
  | { state: "live" }
  | { state: "reconnecting"; retryInMs: number; reason: string };

export interface WatchOptions {
  intervalMs?: number;
  onStats: (stats: NetworkStats) => void;
  onStatus: (status: LiveStatus) => void;
}

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

/** Starts watching; the returned function stops. */
export function watchStats(network: IrisClient["network"], options: WatchOptions): () => void {
  const stop = new AbortController();
  void (async () => {
    let retryMs = FIRST_RETRY_MS;
    while (!stop.signal.aborted) {
      options.onStatus({ state: "connecting" });
      let reason = "the stream ended";
      try {
        for await (const response of network.watchStats(
          { intervalMs: options.intervalMs ?? 1000 },
          { signal: stop.signal },
        )) {
          retryMs = FIRST_RETRY_MS; // a stream that delivered was healthy: the next outage starts from a short wait
          options.onStatus({ state: "live" });
          if (response.stats) options.onStats(response.stats);
        }
      } catch (err) {
        if (stop.signal.aborted) return;
        reason = ConnectError.from(err).rawMessage;
      }
      // full jitter, so many dashboards do not reconnect in step after a coordinator restart
      const wait = Math.round(retryMs / 2 + (Math.random() * retryMs) / 2);
      options.onStatus({ state: "reconnecting", retryInMs: wait, reason });
      await new Promise((resolve) => setTimeout(resolve, wait));
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    }
  })();
  return () => stop.abort();
}
