// The coordinator's task settings from the environment: the queue, timeouts and retries, division modes and spot
// checks, and the difficulty classifier.
import type { EnvReader } from "../../common/env.ts";

export interface TaskSettings {
  /** updateMs: how often a waiting request hears its position and estimated wait again (QUEUE_UPDATE_MS). */
  queue: { maxLength: number; maxWaitMs: number; updateMs: number };
  tasks: {
    /** SPEC's per-difficulty timeouts (60 s, 300 s, 600 s by default). */
    timeoutsMs: { SIMPLE: number; COMPLEX: number; ADVANCED: number };
    /** Nodes tried for one request (first try plus re-routes) before it fails. */
    maxAttempts: number;
    /** max_tokens when a request gives none. */
    defaultMaxTokens: number;
  };
  /** Division modes and spot checks (docs/concepts/division.md). */
  division: {
    /** Nodes that answer a consensus request when it does not say (CONSENSUS_DEFAULT_NODES). */
    consensusDefaultNodes: number;
    /** Two answers agree when their normalised word similarity reaches this (CONSENSUS_SIMILARITY, 0.5–1). */
    consensusSimilarity: number;
    /** The most parts the planner may split a request into (SUBTASKS_MAX_PARTS). */
    subtasksMaxParts: number;
    /** Tokens per chunk of a long document, at most (CONTEXT_CHUNK_TOKENS); nodes' context lengths lower it. */
    contextChunkTokens: number;
    /** Tokens each chunk repeats from the end of the previous one (CONTEXT_OVERLAP_TOKENS). */
    contextOverlapTokens: number;
    /** The most tokens one chunk's notes may take (CONTEXT_NOTE_TOKENS). */
    contextNoteTokens: number;
    /** The most chunks one document may be split into (CONTEXT_MAX_CHUNKS); longer ones are refused. */
    contextMaxChunks: number;
    /** The share of single-mode tasks re-run on a second node to check the first (SPOT_CHECK_FRACTION, 0–1). */
    spotCheckFraction: number;
    /** Mismatches after which a node gets no more work until an admin clears it (SPOT_CHECK_SUSPEND_AFTER). */
    spotCheckSuspendAfter: number;
    /** How long a chosen check may wait for a free checker (SPOT_CHECK_MAX_WAIT_MS); 0: only a node free at once. */
    spotCheckMaxWaitMs: number;
    /** How often a known-answer canary prompt goes to one idle node; 0 turns canaries off (CANARY_INTERVAL_MS). */
    canaryIntervalMs: number;
  };
  /** The difficulty classifier chain (OpenRouter → an idle node → local rules). */
  classifier: { openRouterBudgetMs: number; nodeBudgetMs: number; cacheTtlMs: number; cacheMaxEntries: number };
  openRouter: { apiKey?: string; url: string; model: string };
}

export function readTaskSettings(r: EnvReader): TaskSettings {
  return {
    queue: {
      maxLength: r.int("QUEUE_MAX_LENGTH", 1_000, 0, 1_000_000),
      maxWaitMs: r.int("QUEUE_MAX_WAIT_MS", 30_000, 0, 3_600_000),
      updateMs: r.int("QUEUE_UPDATE_MS", 2_000, 100, 60_000),
    },
    tasks: {
      timeoutsMs: {
        SIMPLE: r.int("TASK_TIMEOUT_SIMPLE_MS", 60_000, 100, 86_400_000),
        COMPLEX: r.int("TASK_TIMEOUT_COMPLEX_MS", 300_000, 100, 86_400_000),
        ADVANCED: r.int("TASK_TIMEOUT_ADVANCED_MS", 600_000, 100, 86_400_000),
      },
      maxAttempts: r.int("TASK_MAX_ATTEMPTS", 3, 1, 20),
      defaultMaxTokens: r.int("DEFAULT_MAX_TOKENS", 1_024, 1, 131_072),
    },
    division: {
      consensusDefaultNodes: r.int("CONSENSUS_DEFAULT_NODES", 3, 2, 9),
      consensusSimilarity: r.number("CONSENSUS_SIMILARITY", 0.9, 0.5, 1),
      subtasksMaxParts: r.int("SUBTASKS_MAX_PARTS", 6, 2, 32),
      contextChunkTokens: r.int("CONTEXT_CHUNK_TOKENS", 3_072, 256, 1_000_000),
      contextOverlapTokens: r.int("CONTEXT_OVERLAP_TOKENS", 128, 0, 100_000),
      contextNoteTokens: r.int("CONTEXT_NOTE_TOKENS", 512, 16, 100_000),
      contextMaxChunks: r.int("CONTEXT_MAX_CHUNKS", 512, 1, 10_000),
      spotCheckFraction: r.number("SPOT_CHECK_FRACTION", 0.05, 0, 1),
      spotCheckSuspendAfter: r.int("SPOT_CHECK_SUSPEND_AFTER", 3, 1, 1_000),
      spotCheckMaxWaitMs: r.int("SPOT_CHECK_MAX_WAIT_MS", 30_000, 0, 3_600_000),
      canaryIntervalMs: r.int("CANARY_INTERVAL_MS", 600_000, 0, 86_400_000),
    },
    classifier: {
      openRouterBudgetMs: r.int("CLASSIFIER_OPENROUTER_BUDGET_MS", 2_500, 100, 60_000),
      nodeBudgetMs: r.int("CLASSIFIER_NODE_BUDGET_MS", 2_000, 0, 60_000),
      cacheTtlMs: r.int("CLASSIFIER_CACHE_TTL_MS", 600_000, 0, 86_400_000),
      cacheMaxEntries: r.int("CLASSIFIER_CACHE_MAX_ENTRIES", 10_000, 0, 1_000_000),
    },
    openRouter: {
      apiKey: r.string("OPENROUTER_API_KEY"),
      url: r.url("OPENROUTER_URL", ["http:", "https:"], "https://openrouter.ai/api/v1"),
      model: r.string("OPENROUTER_MODEL", "openai/gpt-4o-mini"),
    },
  };
}
