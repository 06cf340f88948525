// Spot checks and canaries: a share of single-mode answers is silently re-run on a second, more reputable node
// of the same model and quantization, and canaries (canary.ts) go to idle nodes now and then. A mismatch is an
// invalid response (with both outputs' hashes as evidence) and counts toward suspension.
import { randomInt, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import { runCanary } from "./canary.ts";
import { normalizedWords, similarity } from "./division/compare.ts";
import type { MismatchRecorder } from "./division/mismatch.ts";
import type { PartEvent, PartResult, PartRunner, PartSpec } from "./division/part.ts";
import { modelIdentity, pickNode, type RouteRequest } from "./router.ts";

export interface SpotCheckDeps {
  parts: PartRunner;
  registry: NodeRegistry;
  logger: Logger;
  mismatches: MismatchRecorder;
  config: Pick<Config["division"], "spotCheckFraction" | "consensusSimilarity" | "canaryIntervalMs">;
  /** Uniform in [0, 1): which tasks are checked, which node gets a canary, the canary's code. */
  random?: () => number;
}

export { canaryPrompt, passesCanary } from "./canary.ts";

export class SpotChecker {
  readonly #abort = new AbortController();
  readonly #random: () => number;
  readonly #timer: NodeJS.Timeout | undefined;
  #canaryRunning = false;

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
    this.#check(original.spec, original.result).catch((err: unknown) => this.deps.logger.error({ err, taskId: original.spec.taskId }, "a spot check failed"));
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
    const { logger, registry, config } = this.deps;
    const first = result.node;
    // the second opinion: another node of the same model and quantization, trusted more than the first
    const route: RouteRequest = { difficulty: spec.difficulty, model: undefined, exclude: new Set([first.id]), sameModel: modelIdentity(first), reputationAbove: first.reputation };
    if (!pickNode(registry.nodes(), route)) {
      logger.debug({ taskId: spec.taskId, nodeId: first.id }, "spot check skipped: no free, more reputable node of the same model");
      return;
    }
    const second = await this.#run({
      ...spec,
      taskId: randomUUID(),
      parentId: spec.taskId,
      classifier: "spot_check",
      temperature: 0,
      model: undefined,
      sameModel: route.sameModel,
      reputationAbove: route.reputationAbove,
      exclude: route.exclude as Set<string>,
      accountId: undefined,
      clientAddress: undefined,
      started: Date.now(),
      reward: "never",
      wait: "never",
    });
    if (!second) return;
    const score = similarity(normalizedWords(result.text), normalizedWords(second.text), config.consensusSimilarity);
    if (score >= config.consensusSimilarity) {
      logger.info({ taskId: spec.taskId, nodeId: first.id, checkedBy: second.node.id }, "spot check passed");
      return;
    }
    this.deps.mismatches.record(result, {
      check: "spot_check",
      reference: second.text,
      referenceFrom: second.node.id,
      referenceTaskId: second.taskId,
      similarity: score,
      threshold: config.consensusSimilarity,
    });
  }

  async #canary(): Promise<void> {
    const { registry, logger, mismatches, config } = this.deps;
    const idle = [...registry.nodes()].filter((node) => node.connected && !node.suspended && node.tasks.size === 0 && node.freeSlots > 0);
    if (idle.length === 0) return;
    const target = idle[Math.floor(this.#random() * idle.length)]!;
    await runCanary({ registry, logger, mismatches, similarity: config.consensusSimilarity, random: this.#random, run: (spec) => this.#run(spec) }, target);
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
