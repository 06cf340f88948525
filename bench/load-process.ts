// The benchmark's peer process, apart from the coordinator's and the measuring parent's: it hosts the LM
// Studio stand-in, scripted nodes, a direct gRPC chat server, load-generator nodes and chat clients, and
// does what the parent asks over IPC (see load-control.ts for the commands).
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Difficulty, DivisionMode, Tier } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { startLmStudioStandin, type LmStudioStandin } from "../test/support/lmstudio-standin.ts";
import { startScriptedNode, type ScriptedNode } from "../test/support/scripted-node.ts";
import { checkWireEncoding } from "./grpc-wire.ts";
import { ChatLoad } from "./load-client.ts";
import { LoadNode, TokenPump } from "./load-node.ts";
import { ascending, percentile, sleep } from "./stats.ts";

export type LoadCommand =
  | { cmd: "standin"; tokens: string[] }
  | { cmd: "scriptedNode"; url: string; accountKey: string; nodeId: string; slots: number; tokens: string[] }
  | { cmd: "stopScriptedNodes" }
  | { cmd: "directChatServer"; tokens: string[] }
  | { cmd: "nodes"; url: string; accountKey: string; count: number; slots: number; prefix: string; coalesce?: boolean }
  | { cmd: "rate"; tokensPerSecond: number }
  | { cmd: "clients"; url: string; accountKey: string; clients: number; tokensPerChat: number }
  | { cmd: "window"; ms: number }
  | { cmd: "stopClients" }
  | { cmd: "stopNodes" };

export interface WindowResult {
  seconds: number;
  tokens: number;
  emitted: number;
  /** Chunks the load nodes sent in the window (fewer than `emitted` tokens when they coalesce). */
  chunks: number;
  chats: number;
  errors: number;
  firstError?: string;
  latencyP50?: number;
  latencyP99?: number;
  blockedTicks: number;
}

let standin: LmStudioStandin | undefined;
let scripted: ScriptedNode[] = [];
let nodes: LoadNode[] = [];
let pump: TokenPump | undefined;
let chats: ChatLoad | undefined;

async function handle(command: LoadCommand): Promise<unknown> {
  switch (command.cmd) {
    case "standin": {
      standin ??= await startLmStudioStandin({ tokens: command.tokens, firstTokenDelayMs: 0, tokenDelayMs: 0 });
      return { baseUrl: standin.baseUrl };
    }
    case "scriptedNode": {
      const node = startScriptedNode({
        baseUrl: command.url,
        accountKey: command.accountKey,
        nodeId: command.nodeId,
        tokensPerSecond: 1000,
        maxConcurrentTasks: command.slots,
        script: () => ({ tokens: command.tokens }),
      });
      scripted.push(node);
      await node.registered;
      return {};
    }
    case "stopScriptedNodes": {
      for (const node of scripted) node.kill();
      await Promise.all(scripted.map((node) => node.ended));
      scripted = [];
      return {};
    }
    case "directChatServer":
      return { url: await startDirectChatServer(command.tokens) };
    case "nodes": {
      const started = performance.now();
      const created: LoadNode[] = [];
      let retried = 0;
      const start = (i: number) =>
        new LoadNode({
          url: command.url,
          accountKey: command.accountKey,
          nodeId: `${command.prefix}-${i}`,
          slots: command.slots,
          coalesce: command.coalesce,
        });
      // registration in waves of 100, as a fleet reconnecting after a coordinator restart would arrive
      for (let i = 0; i < command.count; i += 100) {
        const wave = Array.from({ length: Math.min(100, command.count - i) }, (_, j) => start(i + j));
        // a node that missed the register timeout (this process starved of CPU by thousands of peers and the
        // machine's other work) registers again, as an agent would, up to twice
        for (let attempt = 0; ; attempt++) {
          const outcomes = await withTimeout(
            Promise.allSettled(wave.map((node) => node.registered)),
            60_000,
            `${wave.length} nodes did not register within 60 s`,
          );
          const failed = outcomes.flatMap((outcome, j) => (outcome.status === "rejected" ? [j] : []));
          if (failed.length === 0) break;
          const first = outcomes[failed[0]!] as PromiseRejectedResult;
          if (attempt === 2) throw first.reason;
          retried += failed.length;
          for (const j of failed) wave[j] = start(i + j);
        }
        created.push(...wave);
      }
      nodes.push(...created);
      pump?.stop();
      pump = new TokenPump(nodes, nodes.length * command.slots);
      return { ms: performance.now() - started, retried };
    }
    case "rate":
      pump!.setRate(command.tokensPerSecond);
      return {};
    case "clients":
      chats = new ChatLoad({
        url: command.url,
        accountKey: command.accountKey,
        clients: command.clients,
        tokensPerChat: command.tokensPerChat,
      });
      return {};
    case "window": {
      const blocked0 = nodes.reduce((sum, node) => sum + node.blockedTicks, 0);
      chats?.reset();
      const emitted0 = pump?.emitted ?? 0;
      const chunks0 = nodes.reduce((sum, node) => sum + node.chunksSent, 0);
      const t0 = performance.now();
      await sleep(command.ms);
      const seconds = (performance.now() - t0) / 1000;
      const counters = chats?.reset();
      const latencies = ascending(counters?.latencies ?? []);
      const result: WindowResult = {
        seconds,
        tokens: counters?.tokens ?? 0,
        emitted: (pump?.emitted ?? 0) - emitted0,
        chunks: nodes.reduce((sum, node) => sum + node.chunksSent, 0) - chunks0,
        chats: counters?.chats ?? 0,
        errors: counters?.errors ?? 0,
        firstError: counters?.firstError,
        latencyP50: latencies.length ? percentile(latencies, 50) : undefined,
        latencyP99: latencies.length ? percentile(latencies, 99) : undefined,
        blockedTicks: nodes.reduce((sum, node) => sum + node.blockedTicks, 0) - blocked0,
      };
      return result;
    }
    case "stopClients":
      await chats?.stop();
      chats = undefined;
      return {};
    case "stopNodes": {
      pump?.stop();
      pump = undefined;
      await Promise.all(nodes.map((node) => node.close()));
      nodes = [];
      return {};
    }
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The baseline for the coordinator's own latency: the same gRPC Chat stream, served straight by a process
 * that answers at once (as a node would if clients could reach it directly), with the same events.
 */
async function startDirectChatServer(tokens: string[]): Promise<string> {
  const handler = connectNodeAdapter({
    routes(router) {
      router.service(InferenceService, {
        async *chat() {
          yield {
            event: {
              case: "accepted",
              value: {
                taskId: "direct",
                difficulty: Difficulty.SIMPLE,
                tier: Tier.PRO,
                nodeId: "direct",
                divisionMode: DivisionMode.SINGLE,
              },
            },
          };
          for (const text of tokens) yield { event: { case: "token", value: { text } } };
          yield {
            event: {
              case: "done",
              value: {
                usage: { promptTokens: 7, completionTokens: tokens.length },
                nodeId: "direct",
                finishReason: "stop",
              },
            },
          };
        },
      });
    },
  });
  const server = http2.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

checkWireEncoding();
process.on("message", (message: { id: number; command: LoadCommand }) => {
  handle(message.command).then(
    (result) => process.send!({ id: message.id, ok: true, result }),
    (err: unknown) =>
      process.send!({
        id: message.id,
        ok: false,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      }),
  );
});
process.on("disconnect", () => process.exit(0));
process.send!({ ready: true });
