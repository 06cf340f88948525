// What a mismatch costs a node (consensus minority, failed spot check or canary): the invalid-response rule with
// both outputs' hashes as evidence, and one more count toward suspension.
import type { Logger } from "pino";
import type { JsonValue } from "../../db/schema.ts";
import type { NodeRegistry } from "../../nodes/registry.ts";
import type { MismatchCount } from "../../nodes/suspension.ts";
import { answerHash } from "./compare.ts";
import type { PartResult } from "../part-spec.ts";

export interface MismatchEvidence {
  /** Which check found it. */
  check: "consensus" | "spot_check" | "canary";
  /** The text the node's answer was held against, and who produced it (a node id, or "known answer"). */
  reference: string;
  referenceFrom: string;
  /** The task whose answer served as the reference (the other part, the spot check's run). */
  referenceTaskId?: string;
  similarity: number;
  /** The similarity the answers needed (consensus, spot checks); a canary needs its code instead. */
  threshold?: number;
}

export class MismatchRecorder {
  constructor(
    private readonly registry: NodeRegistry,
    private readonly suspendAfter: number,
    private readonly logger: Logger,
    private readonly suspensions?: {
      recordMismatch(nodeId: string, suspendAfter: number): Promise<MismatchCount | undefined>;
    },
  ) {}

  /** Penalises the node that produced `answer` (−50 on its task) and counts the mismatch; suspends at the limit. */
  record(answer: PartResult, evidence: MismatchEvidence): void {
    const node = answer.node;
    const recorded: Record<string, JsonValue> = {
      check: evidence.check,
      answerSha256: answerHash(answer.text),
      referenceSha256: answerHash(evidence.reference),
      referenceFrom: evidence.referenceFrom,
      similarity: Math.round(evidence.similarity * 1000) / 1000,
      ...(evidence.threshold !== undefined ? { threshold: evidence.threshold } : {}),
      ...(evidence.referenceTaskId ? { referenceTaskId: evidence.referenceTaskId } : {}),
    };
    answer.judge("invalid_response", recorded);
    this.logger.warn(
      { nodeId: node.id, taskId: answer.taskId, ...recorded },
      "answer does not match: invalid response",
    );
    if (!this.suspensions) return;
    this.suspensions
      .recordMismatch(node.id, this.suspendAfter)
      .then((count) => {
        if (!count?.suspended) return;
        const live = this.registry.get(node.id);
        if (live) live.suspended = true;
        if (count.newlySuspended)
          this.logger.warn(
            { nodeId: node.id, mismatches: count.mismatches },
            "node suspended after repeated mismatches; an admin's ClearNode lifts it",
          );
      })
      .catch((err: unknown) => this.logger.error({ err, nodeId: node.id }, "could not count a mismatch"));
  }
}
