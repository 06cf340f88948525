// NetworkService: the network's read side (stats, nodes, leaderboard, tasks, reputation, payouts) and admin actions.
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { NetworkService } from "../../gen/iris/v1/network_pb.ts";
import { normalizeAccountKey } from "../accounts/keys.ts";
import { isAdmin, principalKey } from "../accounts/principal.ts";
import { findAccountId } from "../accounts/store.ts";
import type { ReputationEventRow } from "../db/schema.ts";
import { listPayouts } from "../economics/payouts.ts";
import { clearSuspension } from "../nodes/suspension.ts";
import { reputationHistory } from "../reputation/ledger.ts";
import { findNodeInfo, leaderboard, listNodes } from "./nodes.ts";
import { NetworkStatsSampler, type StatsSources } from "./stats.ts";
import { recentTasks } from "./tasks.ts";

export type NetworkServiceDeps = StatsSources;

const DEFAULT_WATCH_INTERVAL_MS = 1000;
/** GetStats reuses task totals read this recently: dashboards poll, and the task journal lags a flush anyway. */
const GET_STATS_MAX_AGE_MS = 1000;
/** The proto's ceiling for every limit (protovalidate enforces it; this guards callers that bypass it). */
const MAX_LIMIT = 1000;
/** ListPayouts has no limit field; this bounds one answer (months × paid accounts) below the message size. */
const PAYOUTS_LIMIT = 10_000;

const limitOf = (requested: number, fallback: number): number => Math.min(requested || fallback, MAX_LIMIT);

/**
 * Admin-only methods, checked here as well as by the auth interceptor's policy (accounts/auth.ts) and with
 * the same codes: without a user token (anonymous, or an account key) Unauthenticated, since the caller may
 * retry with one; a user who is not an admin PermissionDenied.
 */
function requireAdmin(ctx: HandlerContext, method: string): void {
  const principal = ctx.values.get(principalKey);
  if (isAdmin(principal)) return;
  if (principal.kind !== "user") throw new ConnectError(`${method} needs an admin's token`, Code.Unauthenticated);
  throw new ConnectError(`${method} is for admins only`, Code.PermissionDenied);
}

/** The account a key names, if the caller may read its history: the account itself (key or linked user) or an admin. */
async function readableAccount(deps: NetworkServiceDeps, accountKey: string, ctx: HandlerContext): Promise<string> {
  const principal = ctx.values.get(principalKey);
  if (principal.kind === "anonymous") {
    throw new ConnectError(
      "account_key: an account's history needs that account's key or an admin's token",
      Code.Unauthenticated,
    );
  }
  const accountId = await findAccountId(deps.db, normalizeAccountKey(accountKey));
  if (isAdmin(principal)) {
    if (!accountId) throw new ConnectError("account_key: no such account", Code.NotFound);
    return accountId;
  }
  // one answer for "not yours" and "no such account", so the method cannot be used to probe keys
  if (accountId === undefined || principal.accountId !== accountId) {
    throw new ConnectError(
      "account_key: only the account itself or an admin may read its history",
      Code.PermissionDenied,
    );
  }
  return accountId;
}

function reputationEvent(row: ReputationEventRow) {
  return {
    nodeId: row.node_id,
    rule: row.rule,
    delta: row.delta,
    // 0 (below the floor of 10, so never a real score) marks a row written before the ledger kept it
    reputationAfter: row.reputation_after ?? 0,
    taskId: row.task_id ?? "",
    atUnixMs: BigInt(row.created_at.getTime()),
    evidence:
      row.evidence === null ? "" : typeof row.evidence === "string" ? row.evidence : JSON.stringify(row.evidence),
  };
}

export function networkService(deps: NetworkServiceDeps): Partial<ServiceImpl<typeof NetworkService>> {
  // one sampler for every caller: concurrent watchers share its task-count reads
  const sampler = new NetworkStatsSampler(deps);
  return {
    async getStats() {
      return { stats: await sampler.sample(GET_STATS_MAX_AGE_MS) };
    },
    async *watchStats(request, ctx) {
      const intervalMs = request.intervalMs || DEFAULT_WATCH_INTERVAL_MS;
      while (!ctx.signal.aborted) {
        yield { stats: await sampler.sample(intervalMs) };
        try {
          await sleep(intervalMs, undefined, { signal: ctx.signal });
        } catch (err) {
          if (ctx.signal.aborted) return; // the client went away: end the stream quietly
          throw err;
        }
      }
    },
    async listNodes(request) {
      return {
        nodes: await listNodes(deps.db, deps.registry, {
          onlineOnly: request.onlineOnly,
          limit: limitOf(request.limit, 100),
        }),
      };
    },
    async getLeaderboard(request) {
      return { entries: await leaderboard(deps.db, limitOf(request.limit, 20)) };
    },
    async listTasks(request) {
      return {
        tasks: await recentTasks(deps.db, { nodeId: request.nodeId || undefined, limit: limitOf(request.limit, 50) }),
      };
    },
    async getReputationHistory(request, ctx) {
      const limit = limitOf(request.limit, 100);
      const subject = request.subject;
      if (subject.case === "nodeId") {
        const events = await reputationHistory(deps.db, { nodeId: subject.value }, limit);
        // only an empty history needs the extra look-up that tells "no events yet" from "no such node"
        if (events.length === 0 && !(await findNodeInfo(deps.db, deps.registry, subject.value))) {
          throw new ConnectError(`node ${subject.value} is not registered`, Code.NotFound);
        }
        return { events: events.map(reputationEvent) };
      }
      if (subject.case === "accountKey") {
        const accountId = await readableAccount(deps, subject.value, ctx);
        return { events: (await reputationHistory(deps.db, { accountId }, limit)).map(reputationEvent) };
      }
      throw new ConnectError("subject: give a node_id or an account_key", Code.InvalidArgument);
    },
    async listPayouts(request, ctx) {
      requireAdmin(ctx, "ListPayouts");
      const entries = await listPayouts(deps.db, { month: request.month || undefined, limit: PAYOUTS_LIMIT });
      return {
        payouts: entries.map((e) => ({
          month: e.month,
          accountId: e.accountId,
          amount: BigInt(e.amount),
          contribution: e.contribution,
        })),
      };
    },
    // Lifts a suspension for repeated mismatches (spot checks, canaries, consensus): the node takes work again
    // at once when connected here, and at its next registration anywhere else.
    async clearNode(request, ctx) {
      requireAdmin(ctx, "ClearNode");
      if (!(await clearSuspension(deps.db, request.nodeId)))
        throw new ConnectError(`node ${request.nodeId} is not registered`, Code.NotFound);
      const live = deps.registry.get(request.nodeId);
      if (live?.suspended) {
        live.suspended = false;
        deps.registry.notifyCapacity();
      }
      const node = await findNodeInfo(deps.db, deps.registry, request.nodeId);
      if (!node) throw new ConnectError(`node ${request.nodeId} is not registered`, Code.NotFound);
      return { node };
    },
  };
}
