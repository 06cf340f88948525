// What the node link knows of one node's classify answers (how many, how fast), and from that how long a request
// may wait for the node: a node is waited on only for what its own answers say it needs.

/** The latest answers remembered per node; its latency percentile is taken over these. */
export const RECENT_ANSWERS = 20;

export interface ClassifyRecord {
  /** Answers with a difficulty since the node connected or last missed. */
  answers: number;
  /** The latest answers' latencies (assign sent → result in), oldest first, at most RECENT_ANSWERS. */
  latenciesMs: number[];
}

export interface WaitPolicy {
  /** The link's budget (CLASSIFIER_NODE_BUDGET_MS): never wait longer, whatever the record says. */
  budgetMs: number;
  /** How many times the node's p90 latency a request waits… */
  factor: number;
  /** …plus this, for the event loop's and the network's jitter. */
  slackMs: number;
}

/** 2 × p90 + 50 ms: a node answering in 100 ms is waited on for 250 ms, not the whole budget. */
export const DEFAULT_WAIT = { factor: 2, slackMs: 50 } as const;

/** The record after one more answer that took `latencyMs`. */
export function withAnswer(record: ClassifyRecord | undefined, latencyMs: number): ClassifyRecord {
  const latenciesMs = [...(record?.latenciesMs ?? []), Math.max(0, latencyMs)].slice(-RECENT_ANSWERS);
  return { answers: (record?.answers ?? 0) + 1, latenciesMs };
}

/** The nearest-rank percentile `p` (0–100) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * How long a request may wait for the node: undefined when its record shows no answer (it is never waited on,
 * only probed off the request path), else factor × its p90 latency + slack, at most the link's budget.
 */
export function waitFor(record: ClassifyRecord | undefined, policy: WaitPolicy): number | undefined {
  if (!record || record.answers === 0 || record.latenciesMs.length === 0) return undefined;
  return Math.min(policy.budgetMs, Math.ceil(policy.factor * percentile(record.latenciesMs, 90) + policy.slackMs));
}
