// The task runner's pause and hand-back: refusals while paused, live progress in the state, CANCELLED on hand-back;
// and its token counts: chunks that carry several tokens, one count for the state and the coordinator.
import { createSecretKey, randomBytes, randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Channel } from "../common/channel.ts";
import { chunkTokenCount } from "../common/chunk-tokens.ts";
import { openText, sealMessage } from "../common/crypto/envelope.ts";
import { Difficulty, Role } from "../gen/iris/v1/common_pb.ts";
import { ConnectRequestSchema, TaskAssignSchema, TaskErrorReason, TaskPayloadSchema } from "../gen/iris/v1/node_pb.ts";
import type { Backend, GeneratedPiece, GenerateRequest, GenerateResult } from "./backends/backend.ts";
import { AgentState } from "./state.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";
import { TaskRunner } from "./tasks.ts";

const keys = { toNode: createSecretKey(randomBytes(32)), toCoordinator: createSecretKey(randomBytes(32)) };

function assign(maxTokens: number) {
  const taskId = randomUUID();
  const payload = create(TaskPayloadSchema, { messages: [{ role: Role.USER, content: "Compare tea and coffee." }] });
  return create(TaskAssignSchema, {
    taskId,
    difficulty: Difficulty.COMPLEX,
    maxTokens,
    enableStreaming: true,
    payload: {
      case: "sealed",
      value: sealMessage(keys.toNode, TaskPayloadSchema, payload, { taskId, sequence: 0, kind: "assign" }),
    },
  });
}

/** A backend producing one token every `everyMs` until max tokens or abort. */
function tickingBackend(everyMs: number): Backend & { calls: number; requests: GenerateRequest[] } {
  const backend = {
    kind: "test",
    calls: 0,
    requests: [] as GenerateRequest[],
    describe: async () => ({ name: "test", parameterCount: 0, quantization: "", contextLength: 0 }),
    async *generate(request: GenerateRequest): AsyncGenerator<GeneratedPiece, GenerateResult, void> {
      backend.calls++;
      backend.requests.push(request);
      let n = 0;
      for (; n < request.maxTokens && !request.signal.aborted; n++) {
        await new Promise((resolve) => setTimeout(resolve, everyMs));
        yield { text: ` t${n}`, tokens: 1 };
      }
      return { promptTokens: 3, completionTokens: n, finishReason: request.signal.aborted ? "cancelled" : "length" };
    },
    close: async () => {},
  };
  return backend;
}

function runner(backend: Backend, options: { paused?: boolean } = {}) {
  const sent: OutgoingMessage[] = [];
  const state = new AgentState({
    version: "t",
    nodeId: "n",
    accountKey: "1234123412341234",
    coordinatorUrl: "http://c",
    backend: "test",
    maxConcurrentTasks: 1,
  });
  const paused = { value: options.paused ?? false };
  const tasks = new TaskRunner(backend, (m) => void sent.push(m), pino({ level: "silent" }), 1, keys, {
    state,
    isPaused: () => paused.value,
  });
  return { tasks, sent, state, paused };
}

describe("TaskRunner", () => {
  it(
    "refuses an assignment while paused with OVERLOADED (the coordinator re-routes it) and never starts the " +
      "backend",
    async () => {
      const backend = tickingBackend(1);
      const { tasks, sent, state } = runner(backend, { paused: true });
      const task = assign(10);
      await tasks.start(task);
      expect(sent).toEqual([
        {
          case: "error",
          value: { taskId: task.taskId, reason: TaskErrorReason.OVERLOADED, message: "the node is paused" },
        },
      ]);
      expect(backend.calls).toBe(0);
      expect(state.snapshot.totals.refused).toBe(1);
    },
  );

  it("shows a running task's difficulty, tokens and max in the state, then counts it completed", async () => {
    const backend = tickingBackend(2);
    const { tasks, sent, state } = runner(backend);
    const task = assign(20);
    const done = tasks.start(task);
    expect(backend.requests.map((r) => r.whole)).toEqual([false]); // a streamed task: a stream from the server
    await new Promise((resolve) => setTimeout(resolve, 15));
    const live = state.snapshot.tasks[0]!;
    expect(live).toMatchObject({ taskId: task.taskId, difficulty: "COMPLEX", maxTokens: 20 });
    expect(live.tokens).toBeGreaterThan(0);
    await done;
    expect(state.snapshot.tasks).toEqual([]);
    expect(state.snapshot.totals).toMatchObject({ completed: 1, tokens: 20 });
    expect(sent.filter((m) => m?.case === "chunk")).toHaveLength(20);
    expect(sent.at(-1)?.case).toBe("result");
  });

  it("hands running tasks back with CANCELLED, sends nothing for them afterwards, and becomes idle", async () => {
    const { tasks, sent, state } = runner(tickingBackend(2));
    const task = assign(100_000);
    void tasks.start(task);
    await new Promise((resolve) => setTimeout(resolve, 20));
    tasks.handBackAll("the node is shutting down");
    await tasks.idle();
    const errorAt = sent.findIndex((m) => m?.case === "error");
    expect(sent[errorAt]).toEqual({
      case: "error",
      value: { taskId: task.taskId, reason: TaskErrorReason.CANCELLED, message: "the node is shutting down" },
    });
    expect(errorAt).toBe(sent.length - 1); // no chunk or result after the hand-back
    expect(errorAt).toBeGreaterThan(0);
    expect(tasks.active).toBe(0);
    expect(state.snapshot.totals).toMatchObject({ handedBack: 1, completed: 0 });
  });

  it(
    "counts the tokens each chunk carries, sends them with it, and shows the usage the coordinator " + "records",
    async () => {
      // pieces of 3 tokens (as the engine releases the bytes of one character together), and a usage that
      // claims more than the budget: the count sent and shown is the budget, never above
      const chunky: Backend = {
        kind: "test",
        describe: async () => ({ name: "test", parameterCount: 0, quantization: "", contextLength: 0 }),
        async *generate(request) {
          for (let n = 0; n < 4; n++) {
            // one piece a turn: pieces released together would go out as one chunk (the next test)
            await new Promise((resolve) => setTimeout(resolve, 1));
            yield { text: `é${n}`, tokens: 3 };
          }
          return { promptTokens: 3, completionTokens: request.maxTokens + 2, finishReason: "length" };
        },
        close: async () => {},
      };
      const { tasks, sent, state } = runner(chunky);
      await tasks.start(assign(12));
      // what the coordinator reads: each chunk decoded from the wire with its token count
      const wire = sent.map(
        (message) =>
          fromBinary(ConnectRequestSchema, toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { message })))
            .message,
      );
      expect(wire.flatMap((m) => (m.case === "chunk" ? [chunkTokenCount(m.value)] : []))).toEqual([3, 3, 3, 3]);
      const result = wire.at(-1);
      expect(result?.case === "result" && result.value.usage?.completionTokens).toBe(12);
      expect(state.snapshot.totals).toMatchObject({ completed: 1, tokens: 12 });
      expect(state.snapshot.events.at(-1)?.text).toMatch(/completed: 12 tokens/);
    },
  );

  it("sends the pieces released in one turn as one chunk that carries all their tokens, sealed in order", async () => {
    // 16 tokens at once (an upstream read that holds 16 SSE events), then 4 more a turn later
    const burst: Backend = {
      kind: "test",
      describe: async () => ({ name: "test", parameterCount: 0, quantization: "", contextLength: 0 }),
      async *generate() {
        for (let n = 0; n < 16; n++) yield { text: ` a${n}`, tokens: 1 };
        await new Promise((resolve) => setTimeout(resolve, 1));
        for (let n = 0; n < 4; n++) yield { text: ` b${n}`, tokens: 1 };
        return { promptTokens: 3, completionTokens: 20, finishReason: "stop" };
      },
      close: async () => {},
    };
    const { tasks, sent, state } = runner(burst);
    const task = assign(100);
    await tasks.start(task);
    const wire = sent.map(
      (message) =>
        fromBinary(ConnectRequestSchema, toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { message })))
          .message,
    );
    const chunks = wire.flatMap((m) => (m.case === "chunk" ? [m.value] : []));
    expect(chunks.map(chunkTokenCount)).toEqual([16, 4]);
    expect(chunks.map((chunk) => chunk.sequence)).toEqual([0, 1]);
    const texts = chunks.map((chunk) => {
      if (chunk.content.case !== "sealed") throw new Error("a chunk in the clear");
      return openText(keys.toCoordinator, chunk.content.value, {
        taskId: task.taskId,
        sequence: chunk.sequence,
        kind: "chunk",
      });
    });
    expect(texts.join("")).toBe(
      [...Array.from({ length: 16 }, (_, n) => ` a${n}`), ...Array.from({ length: 4 }, (_, n) => ` b${n}`)].join(""),
    );
    const result = wire.at(-1);
    expect(result?.case === "result" && result.value.usage?.completionTokens).toBe(20);
    expect(result?.case === "result" && result.value.chunkCount).toBe(2);
    expect(state.snapshot.totals).toMatchObject({ completed: 1, tokens: 20 });
  });

  it(
    "while the outbox is backed up, sends a task's pieces of many turns as one chunk once the writer drains it, " +
      "then the rest and the result in order",
    async () => {
      let reachGate!: () => void;
      const atGate = new Promise<void>((resolve) => (reachGate = resolve));
      let openGate!: () => void;
      const gate = new Promise<void>((resolve) => (openGate = resolve));
      const slow: Backend = {
        kind: "test",
        describe: async () => ({ name: "test", parameterCount: 0, quantization: "", contextLength: 0 }),
        async *generate() {
          for (let n = 0; n < 5; n++) {
            await new Promise((resolve) => setTimeout(resolve, 1)); // a piece a turn, each its own chunk unhindered
            yield { text: ` a${n}`, tokens: 1 };
          }
          reachGate();
          await gate;
          for (let n = 0; n < 3; n++) {
            await new Promise((resolve) => setTimeout(resolve, 1));
            yield { text: ` b${n}`, tokens: 2 };
          }
          return { promptTokens: 3, completionTokens: 11, finishReason: "stop" };
        },
        close: async () => {},
      };
      // the connection's outbox, its writer stuck on a heartbeat (a flow-controlled stream)
      const outbox = new Channel<OutgoingMessage>();
      outbox.push({ case: "heartbeat", value: {} });
      const tasks = new TaskRunner(slow, (m) => void outbox.push(m), pino({ level: "silent" }), 1, keys, { outbox });
      const task = assign(100);
      const done = tasks.start(task);
      await atGate;
      await new Promise((resolve) => setImmediate(resolve));
      expect(outbox.queued).toBe(1); // the five pieces wait in one chunk
      const taken = [outbox.take()]; // the writer takes the heartbeat: the chunk goes out now
      expect(outbox.queued).toBe(1);
      openGate();
      await done; // the three later pieces waited behind that chunk: one more chunk, then the result
      for (let m = outbox.take(); m; m = outbox.take()) taken.push(m);
      const wire = taken.map((message) => create(ConnectRequestSchema, { message }).message);
      expect(wire.map((m) => m.case)).toEqual(["heartbeat", "chunk", "chunk", "result"]);
      const chunks = wire.flatMap((m) => (m.case === "chunk" ? [m.value] : []));
      expect(chunks.map(chunkTokenCount)).toEqual([5, 6]);
      const texts = chunks.map((chunk) =>
        chunk.content.case === "sealed"
          ? openText(keys.toCoordinator, chunk.content.value, {
              taskId: task.taskId,
              sequence: chunk.sequence,
              kind: "chunk",
            })
          : "",
      );
      expect(texts).toEqual([" a0 a1 a2 a3 a4", " b0 b1 b2"]);
      const result = wire.at(-1);
      expect(result?.case === "result" && result.value.chunkCount).toBe(2);
      expect(result?.case === "result" && result.value.usage?.completionTokens).toBe(11);
    },
  );

  it("with enable_streaming off, sends the whole answer in its result: no chunk, the text sealed for it", async () => {
    const backend = tickingBackend(1);
    const { tasks, sent, state } = runner(backend);
    const task = create(TaskAssignSchema, { ...assign(6), enableStreaming: false });
    await tasks.start(task);
    // the backend may ask its server for one answer instead of a stream
    expect(backend.requests.map((r) => r.whole)).toEqual([true]);
    expect(sent.map((m) => m?.case)).toEqual(["result"]);
    const result = create(ConnectRequestSchema, { message: sent[0]! }).message;
    if (result.case !== "result" || result.value.content.case !== "sealed") throw new Error("no sealed result text");
    expect(result.value.chunkCount).toBe(0);
    expect(result.value.usage?.completionTokens).toBe(6);
    const text = openText(keys.toCoordinator, result.value.content.value, {
      taskId: task.taskId,
      sequence: 0,
      kind: "result",
    });
    expect(text).toBe(" t0 t1 t2 t3 t4 t5");
    expect(state.snapshot.totals.completed).toBe(1);
  });

  it("is idle at once when nothing runs", async () => {
    const { tasks } = runner(tickingBackend(1));
    await expect(tasks.idle()).resolves.toBeUndefined();
  });
});
