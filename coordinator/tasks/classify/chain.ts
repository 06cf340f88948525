// The classifier chain: links tried in order (OpenRouter, a node, the local model), each within its time budget,
// falling through on error, timeout, an invalid answer or a link that declines; answers cached by conversation hash.
import type { Logger } from "pino";
import { DIFFICULTIES } from "../../../common/vocabulary.ts";
import { type Classification, type Classifier, type ClassifierInput, isDeclined } from "./classifier.ts";
import { ClassificationCache, conversationKey, type CacheStats } from "./cache.ts";
import { classifyLocally } from "./model.ts";

export interface ClassifierLink {
  /** Recorded on the task as the deciding classifier: "openrouter", "node", "local". */
  name: string;
  /** How long the link may take; past it the link's signal aborts and the next link decides. */
  budgetMs: number;
  classifier: Classifier;
}

export interface ClassifierChainOptions {
  /** How long an answer is reused for the same conversation; 0 turns the cache off. */
  cacheTtlMs: number;
  /** The most conversations remembered; the least recently used are forgotten first. */
  cacheMaxEntries: number;
  now?: () => number;
  logger?: Pick<Logger, "warn" | "info" | "debug">;
}

export interface LinkCounters {
  answered: number;
  /** Threw, or answered something that is not a difficulty. */
  failed: number;
  timedOut: number;
  /** The caller went away while the link worked. */
  abandoned: number;
  /** The link had nobody to ask (no node known to judge) and passed at once: not a failure. */
  declined: number;
}

export interface ClassifierChainStats {
  links: Record<string, LinkCounters>;
  cache: CacheStats;
  /** Every link failed and the built-in local model answered. */
  fallbacks: number;
}

export interface ClassifierChain extends Classifier {
  stats(): ClassifierChainStats;
}

type Outcome =
  | { kind: "answered"; classification: Classification }
  | { kind: "failed"; error: unknown }
  | { kind: "timedOut" }
  | { kind: "abandoned" }
  | { kind: "declined" };

const timedOut = Symbol("timed out");
const abandoned = Symbol("abandoned");

/**
 * A Classifier that asks each link in turn. The result's `classifier` names the deciding link; a cached result
 * keeps that name (the values stay those of Accepted.classifier) and says `cached: true`. The last link's answers
 * are not cached: it is the cheap always-there fallback, and caching it would hide the better links' answer for
 * a whole TTL once they recover. Should every link fail, the local model answers as "local", so the chain always does.
 */
export function createClassifierChain(
  links: readonly ClassifierLink[],
  options: ClassifierChainOptions,
): ClassifierChain {
  if (links.length === 0) throw new Error("a classifier chain needs at least one link");
  const names = new Set(links.map((link) => link.name));
  if (names.size !== links.length) throw new Error("classifier link names must be unique");
  const cache = new ClassificationCache(options.cacheTtlMs, options.cacheMaxEntries, options.now);
  const counters = new Map(
    links.map((link) => [link.name, { answered: 0, failed: 0, timedOut: 0, abandoned: 0, declined: 0 }]),
  );
  // Logged once per change of state, not per request: a dead API key must not write a warning for every chat.
  const healthy = new Map(links.map((link) => [link.name, true]));
  let fallbacks = 0;

  function note(link: ClassifierLink, outcome: Outcome): void {
    const count = counters.get(link.name)!;
    count[outcome.kind]++;
    // neither says anything about the link's health: the caller left, or the link had nobody to ask
    if (outcome.kind === "abandoned" || outcome.kind === "declined") return;
    const ok = outcome.kind === "answered";
    if (ok === healthy.get(link.name)) {
      if (!ok) options.logger?.debug({ link: link.name, reason: reasonOf(outcome) }, "classifier link still failing");
      return;
    }
    healthy.set(link.name, ok);
    if (ok) options.logger?.info({ link: link.name }, "classifier link answering again");
    else
      options.logger?.warn(
        { link: link.name, budgetMs: link.budgetMs, reason: reasonOf(outcome) },
        "classifier link failing; falling through",
      );
  }

  return {
    async classify(input) {
      const key = cache.enabled ? conversationKey(input.messages) : undefined;
      const hit = key === undefined ? undefined : cache.get(key);
      if (hit) return { ...hit, cached: true };
      for (const [index, link] of links.entries()) {
        // the client is gone: no remote work for it; the local model below still answers in microseconds
        if (input.signal?.aborted) break;
        const started = begin(link, input);
        const outcome = "kind" in started ? started : await attempt(link, input, started);
        note(link, outcome);
        if (outcome.kind !== "answered") continue;
        if (key !== undefined && index < links.length - 1) cache.set(key, outcome.classification);
        return outcome.classification;
      }
      fallbacks++;
      return { difficulty: classifyLocally(input), classifier: "local" };
    },
    stats() {
      return {
        links: Object.fromEntries([...counters].map(([name, count]) => [name, { ...count }])),
        cache: cache.stats(),
        fallbacks,
      };
    },
  };
}

/** The reason a link's signal aborts with when its budget ran out (rather than the caller leaving or an answer). */
export class ClassifierBudgetExceeded extends Error {
  constructor(
    readonly link: string,
    readonly budgetMs: number,
  ) {
    super(`classifier link ${link} did not answer within ${budgetMs} ms`);
    this.name = "ClassifierBudgetExceeded";
  }
}

/**
 * A link throws this when it has nobody to ask for this request and spends no time (the node link with no idle node
 * known to judge): the next link decides at once, and the link is not logged as failing.
 */
export class ClassifierLinkDeclined extends Error {
  constructor(message: string) {
    // thrown on most requests as a signal, not a fault: no stack trace to capture (that was most of its cost)
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = "ClassifierLinkDeclined";
  }
}

const notYet = Symbol("not yet");
const pending = Promise.resolve(notYet);

/** A link asked: its answer to come, and the signal that tells it to stop. */
interface Started {
  answer: Promise<Classification>;
  controller: AbortController;
}

/**
 * Asks the link. One that declines or throws at once (the node link with nobody to ask, on most requests) is judged
 * here: no promise, race or turn of the event loop for it.
 */
function begin(link: ClassifierLink, input: ClassifierInput): Outcome | Started {
  const controller = new AbortController();
  const asked = { messages: input.messages, signal: controller.signal };
  try {
    const answer = link.classifier.begin ? link.classifier.begin(asked) : link.classifier.classify(asked);
    return isDeclined(answer) ? { kind: "declined" } : { answer, controller };
  } catch (error) {
    return failure(error, input);
  }
}

/**
 * Waits for a link's answer against its budget and the caller's signal; the link's own signal aborts whichever ends
 * first. An answer already settled is judged without a timer, a race or a listener on the caller's signal.
 */
async function attempt(
  link: ClassifierLink,
  input: ClassifierInput,
  { answer, controller }: Started,
): Promise<Outcome> {
  let early: Classification | typeof notYet;
  try {
    // race() reacts to an already settled answer before the already resolved `pending`
    early = await Promise.race([answer, pending]);
  } catch (error) {
    return failure(error, input); // settled at once: the link has nothing left to stop
  }
  if (early !== notYet) return judged(link, early);
  let outcome: Outcome | undefined;
  try {
    return (outcome = await raced(link, input, answer));
  } finally {
    // whatever ended the attempt, the link can stop working on it (close its HTTP request, forget its node)
    controller.abort(
      outcome?.kind === "timedOut"
        ? new ClassifierBudgetExceeded(link.name, link.budgetMs)
        : new Error(`classifier link ${link.name} is no longer waited for`),
    );
  }
}

/** Waits for the answer within the link's budget, or until the caller leaves. */
async function raced(link: ClassifierLink, input: ClassifierInput, answer: Promise<Classification>): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  let onCallerAbort: (() => void) | undefined;
  const budget = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(() => resolve(timedOut), link.budgetMs);
  });
  const callerGone = new Promise<typeof abandoned>((resolve) => {
    onCallerAbort = () => resolve(abandoned);
    input.signal?.addEventListener("abort", onCallerAbort, { once: true });
  });
  try {
    // race() subscribes to `answer`, so a link that rejects after losing is not an unhandled rejection
    const result = await Promise.race([answer, budget, callerGone]);
    if (result === timedOut) return { kind: "timedOut" };
    if (result === abandoned) return { kind: "abandoned" };
    return judged(link, result);
  } catch (error) {
    return failure(error, input);
  } finally {
    clearTimeout(timer);
    if (onCallerAbort) input.signal?.removeEventListener("abort", onCallerAbort);
  }
}

function judged(link: ClassifierLink, result: Classification | undefined): Outcome {
  if (!(DIFFICULTIES as readonly string[]).includes(result?.difficulty as string)) {
    return { kind: "failed", error: new Error(`answered ${JSON.stringify(result?.difficulty)}, not a difficulty`) };
  }
  return { kind: "answered", classification: { difficulty: result!.difficulty, classifier: link.name } };
}

function failure(error: unknown, input: ClassifierInput): Outcome {
  if (input.signal?.aborted) return { kind: "abandoned" };
  if (error instanceof ClassifierLinkDeclined) return { kind: "declined" };
  // the link gave up at a tighter budget of its own (the node link's, from the node's measured latency)
  if (error instanceof ClassifierBudgetExceeded) return { kind: "timedOut" };
  return { kind: "failed", error };
}

function reasonOf(outcome: Outcome): string {
  if (outcome.kind === "timedOut") return "no answer within the budget";
  if (outcome.kind === "failed") return outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
  return outcome.kind;
}
