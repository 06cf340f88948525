// The peers trace's third target (`PEERS_TRACE_LEAN=1`, bench/peers-trace.ts): the two-process floor of
// bench/peers-floor.ts doing, on each request, the work Iris's design asks of every request and nothing else, with
// Iris's own functions. The front, as a coordinator: the OpenAI body read into ChatParams and checked by its rules
// (parseCompletionRequest), the account key hashed and looked up, the prompt classified (the local model, its cache
// key), the payload sealed (AES-256-GCM) into a TaskAssign written as a gRPC message on one HTTP/2 stream; the node's
// result decoded, checked by its rules (validateNodeMessage), opened, and the completion written as OpenAI's JSON.
// The back, as an agent: the assign decoded, its payload opened and checked, the upstream asked for the whole answer
// on the agent's own HTTP client, the answer read, sealed and sent up as a TaskResult. What it leaves out is what an
// Iris request does beyond that: Fastify (unless PEERS_LEAN_FASTIFY=1), metering and limits, routing among nodes,
// failover and deadlines, the task journal and reputation (unless PEERS_LEAN_RECORDS=1), the events through the chat
// pipeline's generators. So: how far below Iris a path that does only
// Iris's irreducible work could be, on this machine. Same command line and stdout as bench/peers-floor.ts; it needs
// tsx (`node --import tsx bench/peers-lean.ts back <upstream port>` / `front <back port>`).
import { createPrivateKey, randomInt, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { connect, createServer as createH2Server, type ServerHttp2Stream } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import pino from "pino";
import { createHttpTransport } from "../agent/backends/http-client.ts";
import {
  deriveSessionKeys,
  openMessage,
  openText,
  publicKeyBytes,
  sealMessage,
  sealText,
  type SessionKeys,
} from "../common/crypto/envelope.ts";
import { EnvelopeParser, envelope } from "../common/grpc/envelope.ts";
import { chatRoleFromProto, type Difficulty } from "../common/vocabulary.ts";
import { hashAccountKey, normalizeAccountKey } from "../coordinator/accounts/keys.ts";
import { openDatabase } from "../coordinator/db/connect.ts";
import { parseCompletionRequest } from "../coordinator/http/openai-request.ts";
import { NodeRegistry } from "../coordinator/nodes/registry.ts";
import { ReputationRecorder } from "../coordinator/reputation/recorder.ts";
import { FastCompletionTracker } from "../coordinator/reputation/rules.ts";
import { conversationKey } from "../coordinator/tasks/classify/cache.ts";
import { localClassifier } from "../coordinator/tasks/classify/model.ts";
import { TaskJournal } from "../coordinator/tasks/journal.ts";
import { validateNodeMessage } from "../coordinator/validation.ts";
import {
  ConnectRequestSchema,
  type ConnectResponse,
  ConnectResponseSchema,
  TaskPayloadSchema,
} from "../gen/iris/v1/node_pb.ts";
import { insertNode } from "../test/support/node-rows.ts";
import { listenAndPrint, runRole, serveWhenConnected } from "./peers-pair.ts";
import { RequestRecords } from "./request-records.ts";

const NODE_ID = "lean-node";
const MAX_MESSAGE = 16 * 1024 * 1024;

/** Both ends derive the same session keys from two fixed X25519 keys (a benchmark's, never a real node's). */
function sessionKeys(side: "front" | "back"): SessionKeys {
  const coordinator = privateFromSeed(1);
  const node = privateFromSeed(2);
  const context = {
    coordinatorPublicKey: publicKeyBytes(coordinator),
    nodePublicKey: publicKeyBytes(node),
    nodeId: NODE_ID,
    sessionId: "lean",
  };
  return side === "front"
    ? deriveSessionKeys(coordinator, context.nodePublicKey, context)
    : deriveSessionKeys(node, context.coordinatorPublicKey, context);
}

/** An X25519 private key whose 32 bytes are `byte` repeated (PKCS#8 DER: a fixed prefix, then the key). */
function privateFromSeed(byte: number) {
  const prefix = Buffer.from("302e020100300506032b656e04220420", "hex");
  return createPrivateKey({ key: Buffer.concat([prefix, Buffer.alloc(32, byte)]), format: "der", type: "pkcs8" });
}

function back(upstreamPort: number): void {
  const keys = sessionKeys("back");
  const validator = createValidator();
  const transport = createHttpTransport();
  const url = `http://127.0.0.1:${upstreamPort}/v1/chat/completions`;
  const server = createH2Server();
  server.on("stream", (stream: ServerHttp2Stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto" });
    const parser = new EnvelopeParser(MAX_MESSAGE);
    stream.on("data", (data: Buffer) => {
      for (const bytes of parser.push(data))
        run(stream, fromBinary(ConnectResponseSchema, bytes)).catch((err: unknown) =>
          process.stderr.write(`peers-lean back: ${err instanceof Error ? err.message : String(err)}\n`),
        );
    });
  });
  const run = async (stream: ServerHttp2Stream, message: ConnectResponse) => {
    if (message.message.case !== "taskAssign") return;
    const assign = message.message.value;
    if (assign.payload.case !== "sealed") throw new Error("unsealed payload");
    const taskId = assign.taskId;
    const payload = openMessage(keys.toNode, TaskPayloadSchema, assign.payload.value, {
      taskId,
      sequence: 0,
      kind: "assign",
    });
    const verdict = validator.validate(TaskPayloadSchema, payload);
    if (verdict.kind !== "valid") throw new Error("invalid payload");
    const started = Date.now();
    const answer = await transport(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({
        model: payload.model || "auto",
        messages: payload.messages.map((m) => ({ role: chatRoleFromProto(m.role), content: m.content })),
        stream: false,
        max_tokens: assign.maxTokens,
      }),
    });
    const completion = JSON.parse(await answer.text()) as {
      choices: { message: { content: string }; finish_reason: string }[];
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    answer.release();
    const [choice] = completion.choices;
    const finished = Date.now();
    const result = create(ConnectRequestSchema, {
      message: {
        case: "result",
        value: {
          taskId,
          usage: { promptTokens: completion.usage.prompt_tokens, completionTokens: completion.usage.completion_tokens },
          timings: { timeToFirstTokenMs: finished - started, totalMs: finished - started, tokensPerSecond: 0 },
          finishReason: choice!.finish_reason,
          chunkCount: 0,
          content: {
            case: "sealed",
            value: sealText(keys.toCoordinator, choice!.message.content, { taskId, sequence: 0, kind: "result" }),
          },
        },
      },
    });
    stream.write(envelope(toBinary(ConnectRequestSchema, result)));
  };
  listenAndPrint(server);
}

/**
 * PEERS_LEAN_RECORDS=1 (with DATABASE_URL): each request's records as well, written by Iris's task journal and
 * reputation recorder as a coordinator writes them (bench/request-records.ts; ended tasks gathered for 10 ms), to a
 * node row of its own.
 */
async function recordsOf(): Promise<RequestRecords | undefined> {
  const url = process.env.DATABASE_URL;
  if (process.env.PEERS_LEAN_RECORDS !== "1" || !url) return undefined;
  const opened = await openDatabase({ url, dataDir: "", poolSize: 2 });
  const logger = pino({ level: "warn" });
  const journal = new TaskJournal(opened.db, logger, { instance: "bench-lean", endFlushMs: 10 });
  const recorder = new ReputationRecorder(journal, new FastCompletionTracker(), new NodeRegistry(), logger);
  return new RequestRecords(journal, recorder, await insertNode(opened.db));
}

/** An answer for the client: its headers and the completion, as OpenAI's JSON. */
interface Answer {
  headers: Record<string, string>;
  completion: object;
}

async function front(backPort: number): Promise<void> {
  const keys = sessionKeys("front");
  const records = await recordsOf();
  const accounts = new Map<string, string>();
  const classified = new Map<string, Difficulty>();
  const session = connect(`http://127.0.0.1:${backPort}`);
  const stream = session.request({ ":method": "POST", ":path": "/iris.v1.NodeService/Connect" }, { endStream: false });
  const open = new Map<string, { answer: (answer: Answer) => void; model: string; difficulty: string }>();
  const parser = new EnvelopeParser(MAX_MESSAGE);
  stream.on("data", (data: Buffer) => {
    for (const bytes of parser.push(data)) {
      const message = fromBinary(ConnectRequestSchema, bytes);
      validateNodeMessage(message);
      if (message.message.case !== "result") continue;
      const result = message.message.value;
      const waiting = open.get(result.taskId);
      if (!waiting || result.content.case !== "sealed") continue;
      open.delete(result.taskId);
      const text = openText(keys.toCoordinator, result.content.value, {
        taskId: result.taskId,
        sequence: result.chunkCount,
        kind: "result",
      });
      const usage = result.usage!;
      records?.ended(result.taskId, usage.completionTokens);
      waiting.answer({
        headers: {
          "x-iris-task-id": result.taskId,
          "x-iris-node-id": NODE_ID,
          "x-iris-difficulty": waiting.difficulty,
        },
        completion: {
          id: `chatcmpl-${result.taskId}`,
          object: "chat.completion",
          created: Math.floor(Date.now() / 1000),
          model: waiting.model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: text, refusal: null },
              logprobs: null,
              finish_reason: result.finishReason === "length" ? "length" : "stop",
            },
          ],
          usage: {
            prompt_tokens: usage.promptTokens,
            completion_tokens: usage.completionTokens,
            total_tokens: usage.promptTokens + usage.completionTokens,
          },
        },
      });
    }
  });
  /** One request's work up to its assign on the stream; resolves with the node's answer. */
  const serve = async (body: unknown, authorization: string | undefined): Promise<Answer> => {
    const { params } = parseCompletionRequest(body);
    // the caller: an account key's hash, looked up (the first sight of a key adds it, as a database would hold it)
    const hash = hashAccountKey(normalizeAccountKey(authorization?.replace(/^Bearer /, "") ?? ""));
    if (!accounts.has(hash)) accounts.set(hash, randomUUID());
    const messages = params.messages.map((m) => ({ role: chatRoleFromProto(m.role) ?? "user", content: m.content }));
    // the chain's cache is asked first; the local model's answers are not cached (coordinator/tasks/classify/chain.ts),
    // so it runs for every request, as Iris's does when no better link answers
    const cached = classified.get(conversationKey(messages));
    const difficulty = cached ?? (await localClassifier.classify({ messages })).difficulty;
    const taskId = randomUUID();
    records?.started(taskId, difficulty);
    const answered = new Promise<Answer>((answer) =>
      open.set(taskId, { answer, model: params.model || "auto", difficulty: difficulty.toLowerCase() }),
    );
    const assign = create(ConnectResponseSchema, {
      message: {
        case: "taskAssign",
        value: {
          taskId,
          deadlineUnixMs: BigInt(Date.now() + 60_000),
          maxTokens: params.maxTokens || 16,
          enableStreaming: false,
          payload: {
            case: "sealed",
            value: sealMessage(
              keys.toNode,
              TaskPayloadSchema,
              create(TaskPayloadSchema, {
                messages: params.messages,
                temperature: params.temperature,
                seed: BigInt(randomInt(2 ** 31)),
              }),
              { taskId, sequence: 0, kind: "assign" },
            ),
          },
        },
      },
    });
    stream.write(envelope(toBinary(ConnectResponseSchema, assign)));
    return answered;
  };
  if (process.env.PEERS_LEAN_FASTIFY === "1") {
    serveWhenConnected(await fastifyServer(serve), stream);
    return;
  }
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => {
      const reply = async () => {
        const { headers, completion } = await serve(
          JSON.parse(Buffer.concat(parts).toString()),
          req.headers.authorization,
        );
        res.writeHead(200, { ...headers, "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify(completion));
      };
      reply().catch((err: unknown) => {
        res.writeHead(400, { "content-type": "text/plain" });
        res.end(String(err));
      });
    });
  });
  serveWhenConnected(server, stream);
}

/**
 * PEERS_LEAN_FASTIFY=1: the front's HTTP/1.1 side through Fastify as the coordinator has it (its JSON body parser, an
 * onRequest hook that sets a header, the route in a /v1 plugin with an error handler), so that the trace says what
 * that part of Iris's intake and answer costs where it runs.
 */
async function fastifyServer(serve: (body: unknown, authorization: string | undefined) => Promise<Answer>) {
  const { default: Fastify } = await import("fastify");
  const app = Fastify({ logger: false });
  app.addHook("onRequest", async (req, reply) => {
    reply.header("x-request-id", req.id);
  });
  await app.register(
    async (v1) => {
      v1.setErrorHandler((err, _req, reply) => reply.code(400).send({ error: { message: String(err) } }));
      v1.post("/chat/completions", async (req, reply) => {
        const { headers, completion } = await serve(req.body, req.headers.authorization);
        reply.headers(headers);
        return completion;
      });
    },
    { prefix: "/v1" },
  );
  await app.ready();
  return app.server;
}

await runRole({ back, front }, "node --import tsx bench/peers-lean.ts back <upstream port> | front <back port>");
