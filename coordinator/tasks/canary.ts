// Canaries judge honesty, not skill (docs/concepts/tiers.md, "How capability is verified"): an idle node's answer is
// held against
// what the same model answers on a peer, or against a known answer only where its model class is sure to know it;
// below that a canary measures speed and judges nothing.
import { randomInt, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
import { qualityFactor } from "../nodes/tier.ts";
import { normalizedWords, similarity } from "./division/compare.ts";
import type { MismatchRecorder } from "./division/mismatch.ts";
import type { PartResult, PartSpec } from "./part-spec.ts";
import { modelIdentity, sameModel } from "./router.ts";

/** Below this effective size (parameters × the quantization's factor) a model is not trusted to repeat a code. */
const KNOWN_ANSWER_MIN_PARAMETERS = 3e9;
/** Canary answers: the code and perhaps a few words; a sentence; a paragraph long enough to be a speed sample. */
const MAX_TOKENS = { known_answer: 32, peer: 48, speed: 64 } as const;
const CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

export type CanaryPlan = { kind: "peer"; peer: LiveNode } | { kind: "known_answer" } | { kind: "speed" };

/**
 * How a canary to `target` is judged: against a free peer of another account serving the same model (same name and
 * quantization, no differing file fingerprint; the most reputable first) when there is one; else by a known answer
 * when the model is big enough to be sure to give it; else not at all (speed only).
 */
export function planCanary(target: LiveNode, nodes: Iterable<LiveNode>): CanaryPlan {
  const identity = modelIdentity(target);
  let peer: LiveNode | undefined;
  for (const node of nodes) {
    if (node === target || node.id === target.id || node.accountId === target.accountId) continue;
    if (!node.connected || node.suspended || node.freeSlots <= 0 || !sameModel(modelIdentity(node), identity)) continue;
    if (!peer || node.reputation > peer.reputation || (node.reputation === peer.reputation && node.id < peer.id))
      peer = node;
  }
  if (peer) return { kind: "peer", peer };
  const c = target.capabilities;
  return c.parameterCount * qualityFactor(c.quantization) >= KNOWN_ANSWER_MIN_PARAMETERS
    ? { kind: "known_answer" }
    : { kind: "speed" };
}

/**
 * A known-answer prompt: repeat a random code. Any working model of KNOWN_ANSWER_MIN_PARAMETERS or more can; a node
 * that does not run the model it claims (random text, a canned answer, altered output) cannot.
 */
export function canaryPrompt(random: () => number): { prompt: string; answer: string } {
  const group = () =>
    Array.from({ length: 4 }, () => CODE_ALPHABET[Math.floor(random() * CODE_ALPHABET.length)]).join("");
  const answer = `${group()}-${group()}-${group()}`;
  return { prompt: `Reply with exactly this code and nothing else: ${answer}`, answer };
}

/** A canary passes when the normalised answer contains the code (chatty models may add words around it). */
export function passesCanary(output: string, answer: string): boolean {
  return ` ${normalizedWords(output).join(" ")} `.includes(` ${normalizedWords(answer).join(" ")} `);
}

/** A prompt whose answer at temperature 0 depends on the model, not on a skill: nothing to get right or wrong. */
function peerPrompt(random: () => number): string {
  return `Write one sentence about the number ${1000 + Math.floor(random() * 9000)}.`;
}

/** A prompt any model answers at some length, so the answer is a speed sample (16 tokens or more). */
function speedPrompt(random: () => number): string {
  return `Write a short paragraph about the number ${1000 + Math.floor(random() * 9000)}.`;
}

export interface CanaryDeps {
  registry: NodeRegistry;
  logger: Logger;
  mismatches: MismatchRecorder;
  similarity: number;
  random: () => number;
  /** Runs a check's part to its end (recording its row first); undefined when it could not run or failed. */
  run(spec: Omit<PartSpec, "signal">): Promise<PartResult | undefined>;
}

/** Sends one canary to `target` and judges it as planned. */
export async function runCanary(deps: CanaryDeps, target: LiveNode): Promise<void> {
  const plan = planCanary(target, deps.registry.nodesNamed(target.capabilities.modelName));
  if (plan.kind === "known_answer") {
    const { prompt, answer } = canaryPrompt(deps.random);
    // sampled like an ordinary request (the backend's temperature, a seed): a node behaving only at 0 is seen too
    const result = await deps.run(onlyOn(target, prompt, MAX_TOKENS.known_answer));
    if (!result || passesCanary(result.text, answer)) return;
    deps.mismatches.record(result, {
      check: "canary",
      reference: answer,
      referenceFrom: "known answer",
      similarity: similarity(normalizedWords(result.text), normalizedWords(answer), 0),
    });
    return;
  }
  if (plan.kind === "speed") {
    // judged by nothing: the answer's speed is measured like any answer's (coordinator/tasks/attempt.ts)
    await deps.run(onlyOn(target, speedPrompt(deps.random), MAX_TOKENS.speed));
    return;
  }
  await comparePeers(deps, target, plan.peer);
}

/** Both nodes answer the same prompt at temperature 0 with one seed; the same model gives the same answer. */
async function comparePeers(deps: CanaryDeps, target: LiveNode, peer: LiveNode): Promise<void> {
  const prompt = peerPrompt(deps.random);
  const seed = randomInt(2 ** 31);
  const mine = onlyOn(target, prompt, MAX_TOKENS.peer, { temperature: 0, seed });
  const theirs = onlyOn(peer, prompt, MAX_TOKENS.peer, { temperature: 0, seed, parentId: mine.taskId });
  // the target's row is recorded first (run records before it awaits): the peer's names it as parent
  const [a, b] = await Promise.all([deps.run(mine), deps.run(theirs)]);
  if (!a || !b) return;
  const score = similarity(normalizedWords(a.text), normalizedWords(b.text), deps.similarity);
  const at = Date.now();
  const verdict = score >= deps.similarity ? "verified" : "contradicted";
  target.measured.compared({ verdict, peer: peer.id, at });
  peer.measured.compared({ verdict, peer: target.id, at });
  deps.registry.measured(target);
  deps.registry.measured(peer);
  if (verdict === "verified") {
    deps.logger.info(
      { nodeId: target.id, peer: peer.id },
      "canary: the node answered like a peer serving the same model",
    );
    return;
  }
  // which of two is wrong is not known: the less reputable answer is the mismatch, as in a spot check; equals neither
  if (target.reputation === peer.reputation) {
    deps.logger.warn(
      { nodeId: target.id, peer: peer.id, similarity: score },
      "canary: two nodes serving the same model disagree; equal reputations, nobody judged",
    );
    return;
  }
  const [wrong, right] = target.reputation < peer.reputation ? [a, b] : [b, a];
  deps.mismatches.record(wrong, {
    check: "canary",
    reference: right.text,
    referenceFrom: right.node.id,
    referenceTaskId: right.taskId,
    similarity: score,
    threshold: deps.similarity,
  });
}

/** A canary part that only `node` may take, judged only by the canary. */
function onlyOn(
  node: LiveNode,
  prompt: string,
  maxTokens: number,
  extra: { temperature?: number; seed?: number; parentId?: string } = {},
): Omit<PartSpec, "signal"> {
  return {
    taskId: randomUUID(),
    mode: "single",
    difficulty: "SIMPLE",
    classifier: "canary",
    messages: [{ role: "user", content: prompt }],
    maxTokens,
    seed: randomInt(2 ** 31),
    ...extra,
    exclude: new Set(),
    only: node.id,
    started: Date.now(),
    reward: "never",
    wait: "never",
  };
}
