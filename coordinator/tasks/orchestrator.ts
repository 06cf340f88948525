// The orchestrator: classify, pick the division mode, then run the request as one part (single) or as several
// (consensus, subtasks, context) — each part waits for a capable node, streams, fails over — and finish.
import { randomInt, randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import type { DivisionMode } from "../../common/vocabulary.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import type { MismatchCount } from "../nodes/suspension.ts";
import type { TaskOutcomeInput } from "../reputation/outcomes.ts";
import { requireCapableNode } from "./capable-nodes.ts";
import { type ChatEvent, type ChatInput, doneEvent } from "./chat.ts";
import type { Classifier } from "./classify/classifier.ts";
import { classifyWithHint } from "./classify/hint.ts";
import { contextNeed } from "./context-fit.ts";
import { autoMode, runDivided } from "./division/divided.ts";
import type { DividedTask, DivisionContext } from "./division/divided-task.ts";
import { MismatchRecorder } from "./division/mismatch.ts";
import { PartRunner, type PartRunnerConfig } from "./part-runner.ts";
import type { PartResult, PartSpec } from "./part-spec.ts";
import type { TaskJournal } from "./journal.ts";
import type { QueuePeers } from "./queue.ts";
import { normalizeModelHint } from "./router.ts";
import { SpotChecker } from "./spot-check.ts";

export interface OrchestratorConfig extends PartRunnerConfig {
  defaultMaxTokens: number;
  division: Config["division"];
}

export interface OrchestratorDeps {
  registry: NodeRegistry;
  journal: TaskJournal;
  classifier: Classifier;
  config: OrchestratorConfig;
  logger: Logger;
  /** Counts relayed tokens for the network's tokens/s figure. */
  throughput?: { record(tokens?: number): void };
  /** Hears what each node did with a task (the reputation rules). */
  outcomes?: { record(input: TaskOutcomeInput): void };
  /** Counts mismatches toward suspension (coordinator/nodes/suspension.ts); without it nobody is suspended. */
  suspensions?: { recordMismatch(nodeId: string, suspendAfter: number): Promise<MismatchCount | undefined> };
  /** The other coordinators' waiting requests, in a cluster (coordinator/cluster/queue-view.ts). */
  queuePeers?: QueuePeers;
  /** The clock (ms since the epoch); Date.now by default. */
  now?: () => number;
}

export class Orchestrator {
  readonly #now: () => number;
  readonly #parts: PartRunner;
  readonly #division: DivisionContext;
  readonly #spotChecks: SpotChecker;

  constructor(private readonly deps: OrchestratorDeps) {
    const { registry, journal, config, logger } = deps;
    const now = deps.now ?? Date.now;
    this.#now = now;
    this.#parts = new PartRunner({
      registry,
      journal,
      config,
      logger,
      throughput: deps.throughput,
      outcomes: deps.outcomes,
      queuePeers: deps.queuePeers,
      now,
    });
    const mismatches = new MismatchRecorder(registry, config.division.spotCheckSuspendAfter, logger, deps.suspensions);
    this.#division = { parts: this.#parts, registry, journal, config: config.division, logger, mismatches, now };
    this.#spotChecks = new SpotChecker({ parts: this.#parts, registry, logger, mismatches, config: config.division });
  }

  get queueLength(): number {
    return this.#parts.queueLength;
  }

  /** Stops the canary timer and running checks (coordinator shutdown). */
  close(): void {
    this.#spotChecks.close();
  }

  async *chat(input: ChatInput): AsyncGenerator<ChatEvent, void, undefined> {
    const started = this.#now();
    if (!this.deps.journal.admitting) {
      // the database has been away long enough for the cap of waiting records to fill: keep memory bounded
      throw new ConnectError(
        `database unavailable: ${this.deps.journal.waiting} task records are waiting to be written`,
        Code.Unavailable,
      );
    }
    const taskId = randomUUID();
    const model = normalizeModelHint(input.model);
    if (model !== undefined && !this.deps.registry.servesModel(model)) {
      // the models to choose from, not an RPC's name: the message reaches the chat page, the CLI and /v1 alike
      const served = [...this.deps.registry.modelNames()].sort();
      throw new ConnectError(
        `no connected node serves model ` +
          `"${input.model}"; ${served.length ? `served now: ${served.join(", ")}` : "no node is connected"}`,
        Code.NotFound,
      );
    }
    const { difficulty, classifier } = await classifyWithHint(this.deps.classifier, input, input.difficultyHint, {
      trusted: input.trustedHint === true,
    });
    const maxTokens = input.maxTokens || this.deps.config.defaultMaxTokens;
    const task: DividedTask = { taskId, input, model, difficulty, classifier, maxTokens, started };
    const requested = input.divisionMode ?? "single";
    // the queue is for capable nodes that are busy: with none online the caller hears so now, not after the wait;
    // subtasks, context and auto judge each part on its own and check its tier (division/part-difficulty.ts)
    if (requested === "single" || requested === "consensus")
      requireCapableNode(this.deps.registry, { difficulty, model, exclude: new Set() });
    const mode = requested === "auto" ? autoMode(this.#division, task) : requested;
    if (mode === "single") yield* this.#single(task, requested === "auto" ? "single" : undefined);
    else yield* runDivided(this.#division, task, mode);
  }

  /** One part on one node (with failover): the default path, and auto's choice for requests that fit one node. */
  async *#single(
    task: DividedTask,
    announcedMode: DivisionMode | undefined,
  ): AsyncGenerator<ChatEvent, void, undefined> {
    const { taskId, input, difficulty, classifier, started } = task;
    // one node takes the whole conversation: only a node whose window holds it (and room for an answer)
    const context = contextNeed(input.messages, task.maxTokens);
    requireCapableNode(this.deps.registry, { difficulty, model: task.model, exclude: new Set(), context });
    const check = this.#spotChecks.select(input.temperature);
    const spec: PartSpec = {
      taskId,
      mode: "single",
      difficulty,
      classifier,
      messages: input.messages,
      maxTokens: task.maxTokens,
      temperature: check ? 0 : input.temperature,
      // every task carries a seed, so a node cannot tell the checked ones by it
      seed: check?.seed ?? randomInt(2 ** 31),
      model: task.model,
      context,
      accountId: input.accountId,
      clientAddress: input.clientAddress,
      signal: input.signal,
      ...(input.streaming === false ? { streaming: false } : {}),
      started,
      reward: "now",
      wait: "queue",
    };
    this.#parts.record(spec);
    const part = this.#parts.run(spec);
    let result: PartResult;
    let accepted = false;
    try {
      for (;;) {
        const next = await part.next();
        if (next.done) {
          result = next.value;
          break;
        }
        const event = next.value;
        if (event.type !== "assigned") yield event;
        else if (!accepted) {
          accepted = true;
          const node = event.node;
          yield {
            type: "accepted",
            taskId,
            difficulty,
            tier: node.tier,
            nodeId: node.id,
            model: node.capabilities.modelName,
            classifier,
            ...(announcedMode ? { divisionMode: announcedMode } : {}),
          };
        }
      }
    } finally {
      // the consumer stopped early (client gone): the part cancels its node
      await part.return(undefined as never);
    }
    yield doneEvent(taskId, started, result);
    if (check && result.nodeIds.length === 1) this.#spotChecks.check({ spec, result });
  }
}
