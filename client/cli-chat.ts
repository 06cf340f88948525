// `iris chat`: one prompt streamed to stdout, or an interactive session keeping the conversation; JSON lines with
// --json.
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createInterface } from "node:readline";
import {
  AcceptedSchema,
  DoneSchema,
  QueuedSchema,
  type Accepted,
  type Done,
  type Queued,
} from "../gen/iris/v1/inference_pb.ts";
import { describeFailure, EXIT_INTERRUPTED, EXIT_OK, UsageError, type FailureContext } from "./failure.ts";
import { DivisionMode } from "../gen/iris/v1/common_pb.ts";
import type { Palette } from "./color.ts";
import { difficultyName, divisionName, formatDecimal, formatMs, tierName } from "./format.ts";
import { readAll } from "./prompt.ts";
import type { ChatEvent, ChatMessageInput, ChatOptions, IrisClient } from "./sdk.ts";
import { Spinner } from "./spinner.ts";

export interface Terminal {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

export interface ChatCommandOptions {
  json: boolean;
  quiet: boolean;
  model?: string;
  maxTokens?: number;
  temperature?: number;
  system?: string;
  /** --mode (unset: the coordinator's default, single). */
  mode?: DivisionMode;
  /** --nodes, with --mode consensus. */
  nodes?: number;
  /** Colours for the footer's difficulty and tier (none off a terminal or with NO_COLOR). */
  palette: Palette;
}

/** Ctrl-C while an answer streams cancels that call (the coordinator then cancels the node), not the process. */
export class Interrupts {
  private controller: AbortController | undefined;
  interrupted = false;

  /** A signal for the next call; `interrupted` tells afterwards whether Ctrl-C ended it. */
  begin(): AbortSignal {
    this.controller = new AbortController();
    this.interrupted = false;
    return this.controller.signal;
  }

  end(): void {
    this.controller = undefined;
  }

  /** True when a call was running and is now being cancelled; false means nothing to cancel. */
  cancelCurrent(): boolean {
    if (!this.controller || this.controller.signal.aborted) return false;
    this.interrupted = true;
    this.controller.abort();
    return true;
  }
}

const jsonOptions = { alwaysEmitImplicit: true } as const;

function jsonEvent(event: ChatEvent): unknown {
  if (event.type === "queued") return { type: "queued", queued: toJson(QueuedSchema, event.queued, jsonOptions) };
  if (event.type === "accepted")
    return { type: "accepted", accepted: toJson(AcceptedSchema, event.accepted, jsonOptions) };
  if (event.type === "done") return { type: "done", done: toJson(DoneSchema, event.done, jsonOptions) };
  return { type: "token", text: event.text };
}

/** "ResourceExhausted" → "resource_exhausted", the Connect protocol's spelling of codes. */
const codeName = (code: Code): string => (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();

/** "consensus, verified" / "subtasks" for a divided answer; undefined for a single one (nothing to say). */
function divisionNote(accepted: Accepted | undefined, done: Done): string | undefined {
  const mode = accepted?.divisionMode ?? DivisionMode.UNSPECIFIED;
  if (mode === DivisionMode.UNSPECIFIED || mode === DivisionMode.SINGLE) return undefined;
  const name = divisionName(mode).toLowerCase();
  return mode === DivisionMode.CONSENSUS ? `${name}, ${done.verified ? "verified" : "unverified"}` : name;
}

/** The spinner's line while the request waits; the coordinator repeats Queued every few seconds, so it moves. */
function queuedLine(queued: Queued): string {
  const seconds = (ms: number) => `${Math.max(1, Math.round(ms / 1000))} s`;
  const estimate = queued.estimatedWaitMs !== undefined ? `, a node in about ${seconds(queued.estimatedWaitMs)}` : "";
  return `queued: position ${queued.position}${estimate} (waiting at most ${seconds(queued.maxWaitMs)} more)`;
}

function footer(accepted: Accepted | undefined, done: Done, palette: Palette): string {
  const difficulty = accepted && difficultyName(accepted.difficulty);
  const tier = accepted && tierName(accepted.tier);
  const parts = [
    divisionNote(accepted, done),
    difficulty && palette.difficulty(difficulty),
    tier && palette.tier(tier, `tier ${tier}`),
    `node ${done.nodeIds.length > 1 ? done.nodeIds.join(" → ") : done.nodeId}`,
    accepted?.model && `model ${accepted.model}`,
    `ttft ${formatMs(done.timings?.timeToFirstTokenMs ?? 0)}`,
    `${done.usage?.completionTokens ?? 0} tokens`,
    `${formatDecimal(done.timings?.tokensPerSecond ?? 0)} tokens/s`,
  ];
  return `[${parts.filter(Boolean).join(" · ")}]`;
}

interface Answer {
  text: string;
  completed: boolean;
}

/** Streams one answer: tokens to stdout as they arrive (or JSON lines), the spinner and footer on stderr. */
async function streamAnswer(
  client: IrisClient,
  messages: ChatMessageInput[],
  options: ChatCommandOptions,
  io: Terminal,
  interrupts: Interrupts,
  failure: FailureContext,
): Promise<Answer> {
  const spinner = new Spinner(io.stderr, !options.json && io.stderr.isTTY === true);
  const chatOptions: ChatOptions = {
    model: options.model,
    maxTokens: options.maxTokens,
    temperature: options.temperature,
    divisionMode: options.mode,
    consensusNodes: options.nodes,
  };
  let text = "";
  let accepted: Accepted | undefined;
  let done: Done | undefined;
  spinner.update("connecting…");
  try {
    for await (const event of client.chat(messages, { ...chatOptions, signal: interrupts.begin() })) {
      if (options.json) io.stdout.write(`${JSON.stringify(jsonEvent(event))}\n`);
      if (event.type === "queued") {
        spinner.update(queuedLine(event.queued));
      } else if (event.type === "accepted") {
        accepted = event.accepted;
        spinner.update(`${accepted.nodeId} (${tierName(accepted.tier)}) is answering…`);
      } else if (event.type === "token") {
        spinner.stop();
        text += event.text;
        if (!options.json) io.stdout.write(event.text);
      } else {
        done = event.done;
      }
    }
  } catch (err) {
    spinner.stop();
    if (!options.json && text && !text.endsWith("\n")) io.stdout.write("\n");
    if (interrupts.interrupted) return { text, completed: false };
    if (options.json) {
      const e = ConnectError.from(err);
      io.stdout.write(
        `${JSON.stringify({ type: "error", code: codeName(e.code), message: describeFailure(e, failure) })}\n`,
      );
    }
    throw err;
  } finally {
    spinner.stop();
    interrupts.end();
  }
  if (!options.json) {
    if (!text.endsWith("\n")) io.stdout.write("\n");
    if (!options.quiet && done) io.stderr.write(`${footer(accepted, done, options.palette)}\n`);
  }
  return { text, completed: true };
}

/**
 * The prompt, like `ollama run`: the arguments; or a piped stdin; or both, the piped text then being
 * context appended to the prompt. Undefined means an interactive session (no arguments, stdin a TTY).
 */
async function initialPrompt(words: string[], stdin: NodeJS.ReadStream): Promise<string | undefined> {
  const argument = words.join(" ").trim();
  if (stdin.isTTY) return argument || undefined;
  const piped = (await readAll(stdin)).trim();
  if (argument && piped) return `${argument}\n\n${piped}`;
  const prompt = argument || piped;
  if (!prompt) throw new UsageError("no prompt: give one as an argument or pipe it on stdin");
  return prompt;
}

export async function runChat(
  client: IrisClient,
  words: string[],
  options: ChatCommandOptions,
  io: Terminal,
  interrupts: Interrupts,
  failure: FailureContext,
): Promise<number> {
  const system: ChatMessageInput[] = options.system ? [{ role: "system", content: options.system }] : [];
  const prompt = await initialPrompt(words, io.stdin);
  if (prompt === undefined) return session(client, system, options, io, interrupts, failure);
  const answer = await streamAnswer(
    client,
    [...system, { role: "user", content: prompt }],
    options,
    io,
    interrupts,
    failure,
  );
  return answer.completed ? EXIT_OK : EXIT_INTERRUPTED;
}

const sessionHelp = "/exit (or Ctrl-D) leaves, /clear starts a new conversation, Ctrl-C stops an answer";

/** The interactive session: every exchange is kept and sent with the next question. */
async function session(
  client: IrisClient,
  system: ChatMessageInput[],
  options: ChatCommandOptions,
  io: Terminal,
  interrupts: Interrupts,
  failure: FailureContext,
): Promise<number> {
  const history: ChatMessageInput[] = [...system];
  const rl = createInterface({ input: io.stdin, output: io.stdout, terminal: true, historySize: 200 });
  let exitCode = EXIT_OK;
  // in raw mode Ctrl-C reaches readline, not the process: stop the answer, or leave when there is none
  rl.on("SIGINT", () => {
    if (interrupts.cancelCurrent()) return;
    exitCode = EXIT_INTERRUPTED;
    io.stdout.write("\n");
    rl.close();
  });
  io.stderr.write(`iris chat with ${failure.url}: ${sessionHelp}\n`);
  rl.setPrompt(">>> ");
  rl.prompt();
  for await (const line of rl) {
    const input = line.trim();
    if (input === "/exit" || input === "/quit" || input === "/bye") break;
    if (input === "/clear") {
      history.splice(system.length);
      io.stderr.write("(a new conversation)\n");
    } else if (input === "/help" || input === "/?") {
      io.stderr.write(`${sessionHelp}\n`);
    } else if (input) {
      history.push({ role: "user", content: input });
      try {
        const answer = await streamAnswer(client, history, options, io, interrupts, failure);
        // an interrupted exchange is forgotten: half an answer would mislead the next one
        if (answer.completed) history.push({ role: "assistant", content: answer.text });
        else history.pop();
      } catch (err) {
        history.pop();
        io.stderr.write(`iris: ${describeFailure(err, failure)}\n`);
      }
    }
    rl.prompt();
  }
  rl.close();
  return exitCode;
}
