// An attempt's answer goes to its node's measurements, and the registry is told (the tier follows the speed samples)
// only when the answer changed them: a whole answer gives no speed sample, a prompt no larger than one proven none.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { sealText } from "../../common/crypto/envelope.ts";
import { Role } from "../../gen/iris/v1/common_pb.ts";
import { TaskChunkSchema, TaskPayloadSchema, TaskResultSchema } from "../../gen/iris/v1/node_pb.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { Attempt } from "./attempt.ts";

const ANSWER = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen";

function setup() {
  const registry = new NodeRegistry();
  const node = testNode("n1", "MID");
  registry.add(node);
  const measured: string[] = [];
  registry.onMeasured((changed) => measured.push(changed.id));
  let clock = 1_000;
  const now = () => clock;
  const run = async (taskId: string, prompt: string, chunks: string[]) => {
    const attempt = new Attempt(taskId, node, registry, now);
    const payload = create(TaskPayloadSchema, { messages: [{ role: Role.USER, content: prompt }] });
    await attempt.assign({
      difficulty: "SIMPLE",
      deadlineAt: clock + 60_000,
      maxTokens: 64,
      payload,
      streaming: chunks.length > 0,
    });
    clock += 100;
    for (const [sequence, text] of chunks.entries()) {
      const chunk = create(TaskChunkSchema, {
        taskId,
        sequence,
        content: {
          case: "sealed",
          value: sealText(node.keys.toCoordinator, text, { taskId, sequence, kind: "chunk" }),
        },
      });
      attempt.chunk(chunk);
      expect(attempt.openChunk(chunk)).toMatchObject({ ok: true });
      clock += 100;
    }
    const whole = chunks.length === 0 ? ANSWER : "";
    const result = create(TaskResultSchema, {
      taskId,
      usage: { promptTokens: 10, completionTokens: 16 },
      finishReason: "stop",
      chunkCount: chunks.length,
      ...(whole
        ? {
            content: {
              case: "sealed" as const,
              value: sealText(node.keys.toCoordinator, whole, { taskId, sequence: chunks.length, kind: "result" }),
            },
          }
        : {}),
    });
    attempt.result(result);
    expect(attempt.openResult(result)).toEqual({ ok: true, text: whole });
    attempt.end();
  };
  return { node, measured, run };
}

describe("Attempt: measurements", () => {
  it("tells the registry of a whole answer once: the first proves a context, the same one again nothing", async () => {
    const { node, measured, run } = setup();
    await run("3f1c2a9e-2b7d-4c1e-9a55-0e3c3b2a1d01", "Say hello.", []);
    expect(measured).toEqual(["n1"]);
    expect(node.measured.provenContext).toBe(26);
    await run("3f1c2a9e-2b7d-4c1e-9a55-0e3c3b2a1d02", "Say hello.", []);
    await run("3f1c2a9e-2b7d-4c1e-9a55-0e3c3b2a1d03", "Hi.", []);
    expect(measured).toEqual(["n1"]);
    expect(node.measured.speedSamples).toEqual([]);
    // the node's service times still grow with every answer (the queue's wait estimate reads them)
    expect(node.serviceTimes).toHaveLength(3);
  });

  it("tells it of every streamed answer that gives a speed sample", async () => {
    const { node, measured, run } = setup();
    const pieces = ANSWER.split(" ").map((word) => `${word} `);
    await run("3f1c2a9e-2b7d-4c1e-9a55-0e3c3b2a1d04", "Count.", pieces);
    await run("3f1c2a9e-2b7d-4c1e-9a55-0e3c3b2a1d05", "Count.", pieces);
    expect(node.measured.speedSamples).toHaveLength(2);
    expect(measured).toEqual(["n1", "n1"]);
  });
});
