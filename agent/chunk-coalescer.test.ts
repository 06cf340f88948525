// The chunk coalescer against a real outbox Channel: pieces of one turn in one chunk, and while the outbox is
// backed up a task's pieces wait in one chunk that carries all their tokens, sent once the writer drains it.
import { createSecretKey, randomBytes, randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel } from "../common/channel.ts";
import { chunkTokenCount } from "../common/chunk-tokens.ts";
import { openText } from "../common/crypto/envelope.ts";
import { ConnectRequestSchema } from "../gen/iris/v1/node_pb.ts";
import { ChunkCoalescer } from "./chunk-coalescer.ts";
import { loadAgentConfig } from "./config.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";

const keys = { toNode: createSecretKey(randomBytes(32)), toCoordinator: createSecretKey(randomBytes(32)) };
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** An outbox whose writer has not yet taken a heartbeat, and a coalescer that sends into it. */
function backedUp(options: { sent?: number[] } = {}) {
  const taskId = randomUUID();
  const outbox = new Channel<OutgoingMessage>();
  outbox.push({ case: "heartbeat", value: {} });
  const controller = new AbortController();
  const chunks = new ChunkCoalescer(taskId, keys, (m) => void outbox.push(m), controller.signal, {
    outbox,
    onSent: options.sent && ((n) => options.sent!.push(n)),
  });
  /** What the writer takes from now on, chunks opened to their text and token count. */
  const drain = () => {
    const taken: (string | { text: string; tokens: number; sequence: number })[] = [];
    for (let message = outbox.take(); message; message = outbox.take()) {
      const m = create(ConnectRequestSchema, { message }).message;
      if (m.case !== "chunk") {
        taken.push(m.case ?? "none");
        continue;
      }
      const { content, sequence } = m.value;
      if (content.case !== "sealed") throw new Error("a chunk in the clear");
      const text = openText(keys.toCoordinator, content.value, { taskId, sequence, kind: "chunk" });
      taken.push({ text, tokens: chunkTokenCount(m.value), sequence });
    }
    return taken;
  };
  return { outbox, chunks, controller, drain };
}

describe("ChunkCoalescer", () => {
  it("sends each turn's pieces as their own chunk while the outbox keeps up", async () => {
    const outbox = new Channel<OutgoingMessage>();
    const chunks = new ChunkCoalescer(randomUUID(), keys, (m) => void outbox.push(m), new AbortController().signal, {
      outbox,
    });
    for (let n = 0; n < 3; n++) {
      chunks.add(` t${n}`, 1);
      chunks.add(` u${n}`, 2);
      await turn();
      expect(outbox.queued).toBe(1);
      outbox.take();
    }
    expect(chunks.sent).toBe(3);
  });

  it("paced: the first piece at once, those within the interval together after it, the last at once", async () => {
    const taskId = randomUUID();
    const outbox = new Channel<OutgoingMessage>();
    const chunks = new ChunkCoalescer(taskId, keys, (m) => void outbox.push(m), new AbortController().signal, {
      outbox,
      intervalMs: 200,
    });
    const texts = () => {
      const taken: string[] = [];
      for (let message = outbox.take(); message; message = outbox.take()) {
        const m = create(ConnectRequestSchema, { message }).message;
        if (m.case !== "chunk" || m.value.content.case !== "sealed") throw new Error("not a sealed chunk");
        const { sequence } = m.value;
        taken.push(openText(keys.toCoordinator, m.value.content.value, { taskId, sequence, kind: "chunk" }));
      }
      return taken;
    };
    const startedAt = performance.now();
    chunks.add(" a", 1);
    await turn();
    expect(texts()).toEqual([" a"]); // the first token is not held
    for (const piece of [" b", " c", " d"]) {
      chunks.add(piece, 1);
      await turn();
    }
    expect(texts()).toEqual([]); // held: the previous chunk went out less than 200 ms ago
    await expect.poll(() => outbox.queued, { timeout: 2_000, interval: 5 }).toBe(1);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(190); // not before the interval (timer rounding)
    expect(texts()).toEqual([" b c d"]);
    chunks.add(" e", 1);
    expect(chunks.finish()).toBeUndefined(); // the answer ended: its last chunk goes out now, not after the interval
    expect(texts()).toEqual([" e"]);
    expect(chunks.sent).toBe(3);
  });

  it("paced: a piece after the interval has passed goes out at the end of its turn", async () => {
    const outbox = new Channel<OutgoingMessage>();
    const chunks = new ChunkCoalescer(randomUUID(), keys, (m) => void outbox.push(m), new AbortController().signal, {
      outbox,
      intervalMs: 20,
    });
    chunks.add(" a", 1);
    await turn();
    expect(outbox.take()?.case).toBe("chunk"); // the writer keeps up
    await new Promise((resolve) => setTimeout(resolve, 40));
    chunks.add(" b", 1);
    await turn();
    expect(outbox.take()?.case).toBe("chunk");
  });

  it("merges a backed-up task's pieces of many turns into one chunk of all their tokens, sent on drain", async () => {
    const sent: number[] = [];
    const { outbox, chunks, drain } = backedUp({ sent });
    for (let n = 0; n < 10; n++) {
      chunks.add(` w${n}`, n === 0 ? 3 : 1); // the first piece is 3 tokens (one character's bytes)
      await turn();
    }
    expect(outbox.queued).toBe(1); // still only the heartbeat
    expect(chunks.sent).toBe(0);
    expect(outbox.take()?.case).toBe("heartbeat"); // the writer drains the outbox: the chunk goes out now
    expect(chunks.sent).toBe(1);
    expect(sent).toEqual([12]);
    const words = Array.from({ length: 10 }, (_, n) => ` w${n}`).join("");
    expect(drain()).toEqual([{ text: words, tokens: 12, sequence: 0 }]);
  });

  it("keeps waiting while the drain left its own chunk queued; flush sends at once, before the result", async () => {
    const { outbox, chunks, drain } = backedUp();
    chunks.add(" a", 1);
    await turn();
    outbox.take(); // the heartbeat: chunk 0 (" a") goes out and waits in the outbox
    chunks.add(" b", 1);
    chunks.add(" c", 1);
    await turn();
    expect(outbox.queued).toBe(1);
    chunks.flush(); // the task ends: its last chunk goes now, then the result
    outbox.push({ case: "result", value: {} });
    expect(drain()).toEqual([
      { text: " a", tokens: 1, sequence: 0 },
      { text: " b c", tokens: 2, sequence: 1 },
      "result",
    ]);
    expect(chunks.sent).toBe(2); // the forgotten drain sends nothing more
  });

  it("still sends a long backed-up text at once, at the chunk size cap", async () => {
    const { outbox, chunks } = backedUp();
    chunks.add("x".repeat(40 * 1024), 1);
    await turn();
    expect(chunks.sent).toBe(0);
    chunks.add("y".repeat(30 * 1024), 1);
    expect(chunks.sent).toBe(1);
    expect(outbox.queued).toBe(2);
  });

  it("drops what waits for the drain when the task is aborted", async () => {
    const { outbox, chunks, controller, drain } = backedUp();
    chunks.add(" a", 1);
    chunks.add(" b", 1);
    await turn();
    controller.abort();
    expect(drain()).toEqual(["heartbeat"]);
    chunks.flush();
    chunks.discard();
    expect(chunks.sent).toBe(0);
    expect(outbox.queued).toBe(0);
  });

  it("with streaming off, keeps every piece for the result: one sealed text, no chunk of its own", async () => {
    const taskId = randomUUID();
    const sent: OutgoingMessage[] = [];
    const counted: number[] = [];
    const chunks = new ChunkCoalescer(taskId, keys, (m) => void sent.push(m), new AbortController().signal, {
      onSent: (n) => counted.push(n),
      streaming: false,
    });
    for (let n = 0; n < 5; n++) {
      chunks.add(` w${n}`, 2);
      await turn();
    }
    expect(sent).toEqual([]);
    const sealed = chunks.finish();
    expect(sealed).toBeDefined();
    expect(openText(keys.toCoordinator, sealed!, { taskId, sequence: 0, kind: "result" })).toBe(" w0 w1 w2 w3 w4");
    expect(counted).toEqual([10]);
    // nothing left: a second finish, or one with no pieces, gives the result no text
    expect(chunks.finish()).toBeUndefined();
    expect(chunks.sent).toBe(0);
  });

  it("with streaming off, a text reaching the size cap still goes out as a chunk, and the result follows it", () => {
    const taskId = randomUUID();
    const sent: OutgoingMessage[] = [];
    const chunks = new ChunkCoalescer(taskId, keys, (m) => void sent.push(m), new AbortController().signal, {
      streaming: false,
    });
    chunks.add("x".repeat(64 * 1024), 1);
    chunks.add("tail", 1);
    expect(sent.map((m) => m?.case)).toEqual(["chunk"]);
    expect(chunks.sent).toBe(1);
    const sealed = chunks.finish();
    expect(openText(keys.toCoordinator, sealed!, { taskId, sequence: 1, kind: "result" })).toBe("tail");
  });

  it("with streaming on, finish sends the rest as the last chunk and leaves the result without text", () => {
    const sent: OutgoingMessage[] = [];
    const chunks = new ChunkCoalescer(randomUUID(), keys, (m) => void sent.push(m), new AbortController().signal);
    chunks.add("last", 1);
    expect(chunks.finish()).toBeUndefined();
    expect(sent.map((m) => m?.case)).toEqual(["chunk"]);
  });
});

describe("CHUNK_INTERVAL_MS", () => {
  const base = { IRIS_ACCOUNT_KEY: "1234 5678 9012 3456", NODE_ID: "n1", IRIS_BACKEND: "lmstudio" };
  it("is 10 ms unless set; 0 turns pacing off; a wrong value is refused by name", () => {
    expect(loadAgentConfig(base).chunkIntervalMs).toBe(10);
    expect(loadAgentConfig({ ...base, CHUNK_INTERVAL_MS: "0" }).chunkIntervalMs).toBe(0);
    for (const wrong of ["-1", "1001", "fast"])
      expect(() => loadAgentConfig({ ...base, CHUNK_INTERVAL_MS: wrong })).toThrow(/CHUNK_INTERVAL_MS/);
  });
});
