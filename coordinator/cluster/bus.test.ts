// One contract, two buses: the in-process bus and NATS (against the real server) behave alike.
import { afterEach, describe, expect, it, vi } from "vitest";
import pino from "pino";
import { natsAnswers, natsSkipReason, testNatsUrl, uniqueClusterName } from "../../test/support/nats.ts";
import { BusError, clusterSubjects, subjectToken, type Bus } from "./bus.ts";
import { LocalBus, LocalNetwork } from "./bus-local.ts";
import { NatsBus } from "./bus-nats.ts";

const nats = await natsAnswers();
const logger = pino({ level: "silent" });

const implementations: { name: string; skip: boolean; trio(): Promise<[Bus, Bus, Bus]> }[] = [
  {
    name: "LocalBus",
    skip: false,
    async trio() {
      const network = new LocalNetwork();
      return [new LocalBus(network), new LocalBus(network), new LocalBus(network)];
    },
  },
  {
    name: `NatsBus${natsSkipReason(nats)}`,
    skip: !nats,
    async trio() {
      const connect = (name: string) => NatsBus.connect({ servers: testNatsUrl, name, logger });
      return [await connect("a"), await connect("b"), await connect("c")];
    },
  },
];

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

function received(bus: Bus, subject: string): { messages: string[]; next(count: number): Promise<void> } {
  const messages: string[] = [];
  const waiters: (() => void)[] = [];
  bus.subscribe(subject, (data) => {
    messages.push(text(data));
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    messages,
    async next(count) {
      while (messages.length < count)
        await Promise.race([
          new Promise<void>((resolve) => waiters.push(resolve)),
          sleep(2_000).then(() => {
            throw new Error(`only ${messages.length} of ${count} messages arrived`);
          }),
        ]);
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const implementation of implementations) {
  describe.skipIf(implementation.skip)(implementation.name, () => {
    let buses: Bus[] = [];
    afterEach(async () => {
      await Promise.all(buses.map((bus) => bus.close()));
      buses = [];
    });

    it(
      "delivers published messages to every other subscriber of the subject, in order, and to no other " + "subject",
      async () => {
        const [a, b] = (buses = await implementation.trio());
        const subject = `${uniqueClusterName()}.view`;
        const atA = received(a, subject);
        const atB = received(b, subject);
        const atB2 = received(b, subject);
        const elsewhere = received(b, `${subject}.other`);
        await b.flush(); // the subscriptions reached the server
        await a.flush();
        for (let i = 0; i < 100; i++) a.publish(subject, bytes(`m${i}`));
        await Promise.all([atB.next(100), atB2.next(100)]);
        expect(atB.messages).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
        expect(atB2.messages).toEqual(atB.messages);
        expect(elsewhere.messages).toEqual([]);
        // the sender never hears itself (a coordinator ignores its own views anyway)
        b.publish(subject, bytes("from b"));
        await atA.next(1);
        expect(atA.messages).toEqual(["from b"]);
      },
    );

    it("keeps one sender's order across subjects, and a request after publishes arrives after them", async () => {
      const [a, b] = (buses = await implementation.trio());
      const prefix = uniqueClusterName();
      const heard: string[] = [];
      b.subscribe(`${prefix}.one`, (data) => void heard.push(`one ${text(data)}`));
      b.subscribe(`${prefix}.two`, (data) => void heard.push(`two ${text(data)}`));
      b.serve(`${prefix}.ask`, (data) => (heard.push(`ask ${text(data)}`), bytes("ok")));
      await b.flush();
      for (let i = 0; i < 3; i++) {
        a.publish(`${prefix}.one`, bytes(String(i)));
        a.publish(`${prefix}.two`, bytes(String(i)));
      }
      expect(text(await a.request(`${prefix}.ask`, bytes("last"), 1_000))).toBe("ok");
      expect(heard).toEqual(["one 0", "two 0", "one 1", "two 1", "one 2", "two 2", "ask last"]);
    });

    it("answers a request before it hears what the sender published after it, even in the same read", async () => {
      const [a, b] = (buses = await implementation.trio());
      const prefix = uniqueClusterName();
      const heard: string[] = [];
      b.subscribe(`${prefix}.after`, () => void heard.push("published after"));
      b.serve(`${prefix}.ask`, () => (heard.push("request"), bytes("ok")));
      await b.flush();
      const answer = a.request(`${prefix}.ask`, bytes("?"), 1_000);
      a.publish(`${prefix}.after`, bytes("!"));
      // both leave a (its publishes at the end of the turn), then b's event loop is held while they reach its
      // socket, so that one read takes both
      await new Promise((resolve) => setImmediate(resolve));
      const until = Date.now() + 50;
      while (Date.now() < until);
      expect(text(await answer)).toBe("ok");
      await vi.waitFor(() => expect(heard).toHaveLength(2));
      expect(heard).toEqual(["request", "published after"]);
    });

    it("answers a request from whoever serves the subject; says so when no one does", async () => {
      const [a, b] = (buses = await implementation.trio());
      const subject = `${uniqueClusterName()}.home.b`;
      b.serve(subject, async (data) => bytes(`echo ${text(data)}`));
      await b.flush();
      expect(text(await a.request(subject, bytes("hi"), 1_000))).toBe("echo hi");
      const missing = await a.request(`${subject}.nobody`, bytes("hi"), 1_000).catch((err: unknown) => err);
      expect(missing).toBeInstanceOf(BusError);
      expect((missing as BusError).kind).toBe("no-responders");
    });

    it("times out a request nobody answers in time", async () => {
      const [a, b] = (buses = await implementation.trio());
      const subject = `${uniqueClusterName()}.slow`;
      b.serve(subject, () => new Promise<Uint8Array>(() => {}));
      await b.flush();
      const error = await a.request(subject, bytes("hi"), 100).catch((err: unknown) => err);
      expect((error as BusError).kind).toBe("timeout");
    });

    it("closing one connection removes only its own subscriptions", async () => {
      const [a, b, c] = (buses = await implementation.trio());
      const subject = `${uniqueClusterName()}.view`;
      const atA = received(a, subject);
      const atB = received(b, subject);
      await b.close();
      await a.flush();
      c.publish(subject, bytes("after"));
      await atA.next(1);
      expect(atA.messages).toEqual(["after"]);
      expect(atB.messages).toEqual([]);
    });
  });
}

describe("cluster subjects", () => {
  it("make any instance name one subject token, under the cluster's name", () => {
    const subjects = clusterSubjects("iris");
    expect(subjects.view).toBe("iris.view");
    expect(subjects.home("host.example.com")).toBe(`iris.home.${subjectToken("host.example.com")}`);
    for (const name of ["a.b.c", "with space", "star*", "gt>", "ünïcode"])
      expect(subjectToken(name)).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(subjectToken("a.b")).not.toBe(subjectToken("a_b"));
  });
});
