// Merges the token pieces a task's backend releases in one event-loop turn into one TaskChunk: one seal, one
// protobuf message and one HTTP/2 frame for what arrived together (an upstream's read often holds many SSE events).
import { chunkWithTokens } from "../common/chunk-tokens.ts";
import { sealText, type SessionKeys } from "../common/crypto/envelope.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";

/** Text at which a chunk goes out at once, whatever else the turn brings. */
const MAX_CHUNK_CHARS = 64 * 1024;

export class ChunkCoalescer {
  #text = "";
  /** Tokens of the pieces waiting; the chunk says their sum, so the coordinator counts every token. */
  #tokens = 0;
  #pieces = 0;
  #sequence = 0;
  #scheduled: NodeJS.Immediate | undefined;

  constructor(
    private readonly taskId: string,
    private readonly keys: SessionKeys,
    private readonly send: (message: OutgoingMessage) => void,
    /** Aborted: the coordinator cancelled the task or it was handed back; what waits is dropped, never sent late. */
    private readonly signal: AbortSignal,
    /** Told the tokens of each chunk sent (the terminal UI's live count: once a chunk, not once a piece). */
    private readonly onSent?: (tokens: number) => void,
  ) {}

  /** Chunks sent so far (the result's chunk_count). */
  get sent(): number {
    return this.#sequence;
  }

  /** A piece from the backend: sent with whatever else arrives before the event loop turns. */
  add(text: string, tokens: number): void {
    this.#text += text;
    this.#tokens += tokens;
    this.#pieces++;
    // a long burst goes out in pieces well under a chunk's size limit (1 MiB of text)
    if (this.#text.length >= MAX_CHUNK_CHARS) this.flush();
    else this.#scheduled ??= setImmediate(() => this.flush());
  }

  /** Sends what waits now (before the result or an error, which must follow every chunk). */
  flush(): void {
    clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    if (this.#pieces === 0) return;
    const text = this.#text;
    const tokens = this.#tokens;
    this.#text = "";
    this.#tokens = 0;
    this.#pieces = 0;
    if (this.signal.aborted) return;
    const sequence = this.#sequence++;
    const content = {
      case: "sealed",
      value: sealText(this.keys.toCoordinator, text, { taskId: this.taskId, sequence, kind: "chunk" }),
    } as const;
    this.send({ case: "chunk", value: chunkWithTokens({ taskId: this.taskId, sequence, content }, tokens) });
    this.onSent?.(tokens);
  }

  /** Drops what waits (the task was cancelled). */
  discard(): void {
    clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#text = "";
    this.#tokens = 0;
    this.#pieces = 0;
  }
}
