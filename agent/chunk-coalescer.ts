// Merges the token pieces a task's backend releases in one event-loop turn into one TaskChunk: one seal, one
// protobuf message and one HTTP/2 frame for what arrived together (an upstream's read often holds many SSE events).
// While the outbox is backed up (the stream is flow-controlled or the coordinator slow), a task's pieces keep
// joining its waiting chunk until the writer has taken what the outbox holds: tokens per frame grow with the backlog.
// A fast backend's pieces are paced too: a task's chunks go out at most one each `intervalMs` (CHUNK_INTERVAL_MS, 10
// ms by default, under a 60 Hz screen's frame), the first and the last at once, so a node at 30 tokens/s sends a
// chunk a token and one at 1,000 tokens/s a chunk of ~10: the coordinator's work follows chunks, not tokens.
import { chunkWithTokens } from "../common/chunk-tokens.ts";
import { sealText, type SessionKeys } from "../common/crypto/envelope.ts";
import type { SealedPayload } from "../gen/iris/v1/common_pb.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";

/** Text at which a chunk goes out at once, whatever else the turn brings. */
const MAX_CHUNK_CHARS = 64 * 1024;

/** The outbox as a chunk sees it (the connection's Channel): what waits for the writer, and when it took it all. */
export interface OutboxBacklog {
  readonly queued: number;
  /** Calls the listener once, when the writer has taken every queued message (or the outbox closed). */
  onDrained(listener: () => void): () => void;
}

export interface ChunkCoalescerOptions {
  /** Where the chunks queue; without it a chunk goes out at the end of its turn, backed up or not. */
  outbox?: OutboxBacklog;
  /** Told the tokens of each chunk sent (the terminal UI's live count: once a chunk, not once a piece). */
  onSent?: (tokens: number) => void;
  /**
   * False (the task's enable_streaming off: the caller takes the answer whole): pieces wait for the result, which
   * carries them (`finish()`); only a text reaching the size cap goes out early, as a chunk.
   */
  streaming?: boolean;
  /**
   * At most one chunk each this many milliseconds after the task's previous one (its first goes out at once, its last
   * with finish()); 0 or undefined: one each event-loop turn.
   */
  intervalMs?: number;
}

export class ChunkCoalescer {
  #text = "";
  /** Tokens of the pieces waiting; the chunk says their sum, so the coordinator counts every token. */
  #tokens = 0;
  #pieces = 0;
  #sequence = 0;
  #scheduled: NodeJS.Immediate | undefined;
  /** Set while the waiting chunk waits out the interval since the previous one. */
  #paced: NodeJS.Timeout | undefined;
  /** When the previous chunk went out (performance.now()). */
  #sentAt = -Infinity;
  /** Set while the waiting chunk waits for the outbox to drain: forgets that wait. */
  #forgetDrain: (() => void) | undefined;

  constructor(
    private readonly taskId: string,
    private readonly keys: SessionKeys,
    private readonly send: (message: OutgoingMessage) => void,
    /** Aborted: the coordinator cancelled the task or it was handed back; what waits is dropped, never sent late. */
    private readonly signal: AbortSignal,
    private readonly options: ChunkCoalescerOptions = {},
  ) {}

  /** Chunks sent so far (the result's chunk_count). */
  get sent(): number {
    return this.#sequence;
  }

  /** A piece from the backend: sent with whatever else arrives before the event loop turns (or the outbox drains). */
  add(text: string, tokens: number): void {
    this.#text += text;
    this.#tokens += tokens;
    this.#pieces++;
    // a long burst goes out in pieces well under a chunk's size limit (1 MiB of text)
    if (this.#text.length >= MAX_CHUNK_CHARS) this.flush();
    else if (this.options.streaming === false) return;
    else if (!this.#scheduled && !this.#paced && !this.#forgetDrain) {
      const wait = this.#sentAt + (this.options.intervalMs ?? 0) - performance.now();
      if (wait > 0) this.#paced = setTimeout(() => this.#sendWhenDrained(), wait);
      else this.#scheduled = setImmediate(() => this.#sendWhenDrained());
    }
  }

  /**
   * The turn (or the interval) ended: sends now, or, while the outbox holds messages the writer has not taken, once
   * it has.
   */
  #sendWhenDrained(): void {
    this.#scheduled = undefined;
    this.#paced = undefined;
    const outbox = this.options.outbox;
    if (!outbox || outbox.queued === 0) {
      this.flush();
      return;
    }
    // on the drain it goes out whatever the outbox holds by then: the other tasks' chunks sent on the same drain
    this.#forgetDrain = outbox.onDrained(() => {
      this.#forgetDrain = undefined;
      this.flush();
    });
  }

  /** Sends what waits now (before the result or an error, which must follow every chunk). */
  flush(): void {
    this.#cancelWait();
    if (this.#pieces === 0) return;
    const text = this.#text;
    const tokens = this.#tokens;
    this.#text = "";
    this.#tokens = 0;
    this.#pieces = 0;
    if (this.signal.aborted) return;
    const sequence = this.#sequence++;
    this.#sentAt = performance.now();
    const content = {
      case: "sealed",
      value: sealText(this.keys.toCoordinator, text, { taskId: this.taskId, sequence, kind: "chunk" }),
    } as const;
    this.send({ case: "chunk", value: chunkWithTokens({ taskId: this.taskId, sequence, content }, tokens) });
    this.options.onSent?.(tokens);
  }

  /**
   * The answer ended: streaming, what waits goes out as the last chunk; otherwise it is returned sealed for the result
   * (after the chunks sent, in sequence), or undefined when nothing waits.
   */
  finish(): SealedPayload | undefined {
    if (this.options.streaming !== false) {
      this.flush();
      return undefined;
    }
    this.#cancelWait();
    if (this.#pieces === 0 || this.signal.aborted) return undefined;
    const sealed = sealText(this.keys.toCoordinator, this.#text, {
      taskId: this.taskId,
      sequence: this.#sequence,
      kind: "result",
    });
    this.options.onSent?.(this.#tokens);
    this.discard();
    return sealed;
  }

  /** Drops what waits (the task was cancelled). */
  discard(): void {
    this.#cancelWait();
    this.#text = "";
    this.#tokens = 0;
    this.#pieces = 0;
  }

  #cancelWait(): void {
    clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    clearTimeout(this.#paced);
    this.#paced = undefined;
    this.#forgetDrain?.();
    this.#forgetDrain = undefined;
  }
}
