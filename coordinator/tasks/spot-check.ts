// Spot checks and canaries: a share of single-mode answers is silently re-run on another node of the same model and
// quantization (any such node: checkers.ts), and canaries (canary.ts) go to idle nodes now and then. A mismatch is an
// invalid response (with both outputs' hashes as evidence) and counts toward suspension.
import { randomInt, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
import { runCanary } from "./canary.ts";
import { anyChecker, chooseChecker, wrongAnswer, type CheckerRequest } from "./checkers.ts";
import { normalizedWords, similarity } from "./division/compare.ts";
import type { MismatchRecorder } from "./division/mismatch.ts";
import type { PartRunner } from "./part-runner.ts";
import type { PartEvent, PartResult, PartSpec } from "./part-spec.ts";
import { modelIdentity } from "./router.ts";

export interface SpotCheckDeps {
  parts: PartRunner;
  registry: NodeRegistry;
  logger: Logger;
  mismatches: MismatchRecorder;
  config: Pick<
    Config["division"],
    "spotCheckFraction" | "consensusSimilarity" | "canaryIntervalMs" | "spotCheckMaxWaitMs"
  >;
  /** Uniform in [0, 1): which tasks are checked, which node checks among equals, which node gets a canary. */
  random?: () => number;
}

/** Checks waiting for a free checker at once; beyond this a check is skipped (a busy network sheds its checks). */
const MAX_WAITING_CHECKS = 100;
/** Models whose skipped checks are counted (for their log lines) at once. */
const MAX_MODELS_COUNTED = 1000;

export { canaryPrompt, passesCanary } from "./canary.ts";

export class SpotChecker {
  readonly #abort = new AbortController();
  readonly #random: () => number;
  readonly #timer: NodeJS.Timeout | undefined;
  #canaryRunning = false;
  #waiting = 0;
  /**
   * Checks skipped in a row for each model (no other node of it free): logged at info on the first, at debug after
   * it. A model's count goes when one of its checks runs; past MAX_MODELS_COUNTED models all are forgotten (each says
   * so once more), so that nodes naming ever new models cannot grow it.
   */
  readonly #skipped = new Map<string, number>();

  constructor(private readonly deps: SpotCheckDeps) {
    this.#random = deps.random ?? Math.random;
    if (deps.config.canaryIntervalMs > 0) {
      this.#timer = setInterval(() => void this.canary(), deps.config.canaryIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Whether a single-mode task will be checked, decided before it runs: only tasks whose caller left the
   * temperature open (or asked for 0) qualify, since the check needs deterministic sampling on both nodes;
   * the chosen ones run at temperature 0 with the returned seed.
   */
  select(temperature: number | undefined): { seed: number } | undefined {
    const fraction = this.deps.config.spotCheckFraction;
    if (fraction <= 0 || (temperature !== undefined && temperature !== 0)) return undefined;
    return this.#random() < fraction ? { seed: randomInt(2 ** 31) } : undefined;
  }

  /** Re-runs a completed task (whose answer came from one node) on a second node, off the user's path. */
  check(original: { spec: PartSpec; result: PartResult }): void {
    // nothing awaits the check: its errors end here
    this.#check(original.spec, original.result).catch((err: unknown) =>
      this.deps.logger.error({ err, taskId: original.spec.taskId }, "a spot check failed"),
    );
  }

  /** Sends one canary to an idle node chosen at random (at most one canary at a time). */
  async canary(): Promise<void> {
    if (this.#canaryRunning) return;
    this.#canaryRunning = true;
    try {
      await this.#canary();
    } catch (err) {
      this.deps.logger.error({ err }, "a canary failed");
    } finally {
      this.#canaryRunning = false;
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#abort.abort();
  }

  async #check(spec: PartSpec, result: PartResult): Promise<void> {
    const { logger, config } = this.deps;
    const first = result.node;
    const request: CheckerRequest = {
      model: modelIdentity(first),
      difficulty: spec.difficulty,
      avoid: [first],
      constraints: spec,
    };
    const second = await this.#runOnChecker(request, spec);
    if (!second) return;
    const agree = (a: PartResult, b: PartResult) =>
      similarity(normalizedWords(a.text), normalizedWords(b.text), config.consensusSimilarity);
    const score = agree(result, second);
    if (score >= config.consensusSimilarity) {
      // one in SPOT_CHECK_FRACTION of the requests: a line per request, at debug like the others (#13)
      logger.debug({ taskId: spec.taskId, nodeId: first.id, checkedBy: second.node.id }, "spot check passed");
      return;
    }
    // two answers differ: a third node of the same model, when one is free, says which
    const third = await this.#runOnChecker({ ...request, avoid: [first, second.node] }, spec);
    const wrong = wrongAnswer({
      answeredReputation: first.reputation,
      checkerReputation: second.node.reputation,
      ...(third
        ? {
            referee: {
              agreesWithAnswer: agree(third, result) >= config.consensusSimilarity,
              agreesWithChecker: agree(third, second) >= config.consensusSimilarity,
            },
          }
        : {}),
    });
    const context = {
      taskId: spec.taskId,
      nodeId: first.id,
      checkedBy: second.node.id,
      refereedBy: third?.node.id,
      similarity: score,
    };
    if (!wrong) {
      logger.warn(
        context,
        "spot check: two nodes serving the same model disagree and nothing tells which is right; nobody judged",
      );
      return;
    }
    const [mismatch, reference] = wrong === "answer" ? [result, second] : [second, result];
    this.deps.mismatches.record(mismatch, {
      check: "spot_check",
      reference: reference.text,
      referenceFrom: reference.node.id,
      referenceTaskId: reference.taskId,
      similarity: score,
      threshold: config.consensusSimilarity,
    });
  }

  /**
   * Re-runs `spec` on a checker for `request`, waiting up to SPOT_CHECK_MAX_WAIT_MS while one is busy (user requests
   * waiting in the queue are served first: the queue hears of a free slot before this does). Undefined when no checker
   * came or its run failed.
   */
  async #runOnChecker(request: CheckerRequest, spec: PartSpec): Promise<PartResult | undefined> {
    const { logger } = this.deps;
    const started = this.#startOnChecker(request, spec) ?? (await this.#waitForChecker(request, spec))?.run;
    const { modelName, quantization, modelSha256 = "" } = request.model;
    const model = `${modelName}\n${quantization}\n${modelSha256}`;
    // only for a line: most checks start at once, with nothing skipped before them and nothing to log
    const context = () => ({ taskId: spec.taskId, model: modelName, avoid: request.avoid.map((node) => node.id) });
    const skipped = this.#skipped.get(model) ?? 0;
    if (!started) {
      // a network with one node of a model skips every check of it: one line says so, not one per checked request
      if (skipped === 0 && this.#skipped.size >= MAX_MODELS_COUNTED) this.#skipped.clear();
      this.#skipped.set(model, skipped + 1);
      if (skipped === 0)
        logger.info(
          context(),
          "spot check skipped: no other node of the same model was free (more at debug until one runs)",
        );
      else logger.debug({ ...context(), skippedInARow: skipped + 1 }, "spot check skipped");
      return undefined;
    }
    if (skipped > 0) logger.info({ ...context(), skipped }, "spot checks running again");
    this.#skipped.delete(model);
    return started;
  }

  /** Starts the check on a free checker, if there is one: choosing and reserving its slot happen in one step. */
  #startOnChecker(request: CheckerRequest, spec: PartSpec): Promise<PartResult | undefined> | undefined {
    const checker = chooseChecker(request, this.deps.registry.nodesNamed(request.model.modelName), this.#random);
    return checker && this.#run(checkSpec(spec, checker));
  }

  async #waitForChecker(
    request: CheckerRequest,
    spec: PartSpec,
  ): Promise<{ run: Promise<PartResult | undefined> } | undefined> {
    const { registry, config } = this.deps;
    if (config.spotCheckMaxWaitMs === 0 || this.#waiting >= MAX_WAITING_CHECKS) return undefined;
    this.#waiting++;
    const deadline = Date.now() + config.spotCheckMaxWaitMs;
    try {
      // only while a node that could check is connected (busy): with none, nothing is coming
      while (
        !this.#abort.signal.aborted &&
        Date.now() < deadline &&
        anyChecker(request, registry.nodesNamed(request.model.modelName))
      ) {
        await capacityOrTimeout(registry, deadline - Date.now(), this.#abort.signal);
        const run = this.#startOnChecker(request, spec);
        if (run) return { run };
      }
      return undefined;
    } finally {
      this.#waiting--;
    }
  }

  async #canary(): Promise<void> {
    const { registry, logger, mismatches, config } = this.deps;
    // a node's canaries come from its home coordinator only: a cluster of N does not test each node N times as often
    const idle = [...registry.nodes()].filter(
      (node) => !node.remote && node.connected && !node.suspended && node.tasks.size === 0 && node.freeSlots > 0,
    );
    if (idle.length === 0) return;
    const target = idle[Math.floor(this.#random() * idle.length)]!;
    await runCanary(
      {
        registry,
        logger,
        mismatches,
        similarity: config.consensusSimilarity,
        random: this.#random,
        run: (spec) => this.#run(spec),
      },
      target,
    );
  }

  /** Runs a check's part to its end; undefined when it could not run or failed (that is judged by the part). */
  async #run(spec: Omit<PartSpec, "signal">): Promise<PartResult | undefined> {
    const full: PartSpec = { ...spec, signal: this.#abort.signal };
    this.deps.parts.record(full);
    const run: AsyncGenerator<PartEvent, PartResult, undefined> = this.deps.parts.run(full);
    try {
      for (;;) {
        const next = await run.next();
        if (next.done) return next.value;
      }
    } catch (err) {
      this.deps.logger.info({ err, taskId: spec.taskId }, `${spec.classifier} could not run`);
      return undefined;
    }
  }
}

/** The check's part: the user's request again on `checker` only, at temperature 0 with the same seed. */
function checkSpec(spec: PartSpec, checker: LiveNode): Omit<PartSpec, "signal"> {
  return {
    ...spec,
    taskId: randomUUID(),
    parentId: spec.taskId,
    classifier: "spot_check",
    temperature: 0,
    model: undefined,
    sameModel: modelIdentity(checker),
    reputationAbove: undefined,
    exclude: new Set(),
    only: checker.id,
    accountId: undefined,
    clientAddress: undefined,
    started: Date.now(),
    reward: "never",
    wait: "never",
  };
}

/** Resolves when some node may take work it could not before, after `ms`, or when `signal` aborts. */
function capacityOrTimeout(registry: NodeRegistry, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stopListening();
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    const stopListening = registry.onCapacity(done);
    signal.addEventListener("abort", done, { once: true });
  });
}
