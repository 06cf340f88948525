// The channel's backlog signal: how many items wait for the consumer, and one call when it has taken them all.
import { describe, expect, it } from "vitest";
import { Channel } from "./channel.ts";

describe("Channel backlog", () => {
  it("counts what waits; a push to a waiting consumer never queues", async () => {
    const channel = new Channel<number>();
    const next = channel.next();
    channel.push(1);
    expect(channel.queued).toBe(0);
    await expect(next).resolves.toEqual({ value: 1, done: false });
    channel.push(2);
    channel.push(3);
    expect(channel.queued).toBe(2);
    expect(channel.take()).toBe(2);
    expect(channel.queued).toBe(1);
  });

  it("tells each listener once, when the consumer takes the last queued item", async () => {
    const channel = new Channel<string>();
    channel.push("a");
    channel.push("b");
    const calls: string[] = [];
    channel.onDrained(() => calls.push(`drained with ${channel.queued} queued`));
    await channel.next();
    expect(calls).toEqual([]);
    await channel.next();
    expect(calls).toEqual(["drained with 0 queued"]);
    channel.push("c");
    await channel.next();
    expect(calls).toHaveLength(1); // once, not at every drain
  });

  it("lets a listener push (and listen again) while it is told; a forgotten listener is not told", async () => {
    const channel = new Channel<string>();
    channel.push("held");
    const forgotten: string[] = [];
    channel.onDrained(() => forgotten.push("told"))();
    const again = () => {
      channel.push("from the listener");
      channel.onDrained(again);
    };
    channel.onDrained(again);
    expect(await channel.next()).toEqual({ value: "held", done: false });
    expect(channel.queued).toBe(1);
    expect(await channel.next()).toEqual({ value: "from the listener", done: false });
    expect(channel.queued).toBe(1);
    expect(forgotten).toEqual([]);
  });

  it("tells the listeners when it closes with items still queued", () => {
    const channel = new Channel<number>();
    channel.push(1);
    let told = 0;
    channel.onDrained(() => told++);
    channel.close();
    expect(told).toBe(1);
    expect(channel.push(2)).toBe(false);
  });
});
