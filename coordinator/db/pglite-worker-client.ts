// The coordinator's side of the PGlite worker thread: sends statements (batched per tick), matches the replies,
// and turns a worker that died into "database unavailable" for every statement it still owed an answer.
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { deserializeError, type WorkerHello, type WorkerReply, type WorkerRequest } from "./pglite-protocol.ts";

export interface WorkerResult {
  rows: Record<string, unknown>[];
  /** PostgreSQL's command tag: SELECT, INSERT, COMMIT, ROLLBACK (a COMMIT of a failed transaction)... */
  command?: string;
  affectedRows?: number;
}

interface Pending {
  resolve: (result: WorkerResult) => void;
  reject: (error: Error) => void;
}

const CLOSE_TIMEOUT_MS = 10_000;

/** SQLSTATE 08006 connection_failure: faults.ts maps it to Unavailable, as it does a lost server connection. */
class EmbeddedDatabaseLostError extends Error {
  readonly code = "08006";
  constructor(reason: string, options?: ErrorOptions) {
    super(`the embedded database (PGlite worker thread) stopped: ${reason}`, options);
    this.name = "EmbeddedDatabaseLostError";
  }
}

export class PgliteWorkerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #outbox: WorkerRequest[] = [];
  #nextId = 1;
  /** Set once the worker is gone (crashed or closed): every later statement fails with it at once. */
  #failure: Error | undefined;
  #closing: Promise<void> | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on("message", (replies: WorkerReply[]) => this.#receive(replies));
    worker.on("error", (err) => this.#fail(new EmbeddedDatabaseLostError(err.message, { cause: err })));
    worker.on("exit", (code) => this.#fail(new EmbeddedDatabaseLostError(`exit code ${code}`)));
    // idle, the worker must not keep the process alive (a pg pool's idle clients time out; this never would)
    worker.unref();
  }

  /** Starts the worker and waits until PGlite is open in it (`dataDir` unset: in memory). */
  static async start(dataDir: string | undefined): Promise<PgliteWorkerClient> {
    const worker = new Worker(new URL("./pglite-worker.ts", import.meta.url), { workerData: { dataDir } });
    try {
      const [hello] = (await Promise.race([
        once(worker, "message"),
        once(worker, "exit").then(([code]) =>
          Promise.reject(new Error(`the PGlite worker exited with code ${code} while opening`)),
        ),
      ])) as [WorkerHello];
      if ("fatal" in hello) throw deserializeError(hello.fatal);
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    return new PgliteWorkerClient(worker);
  }

  query(sql: string, parameters: readonly unknown[]): Promise<WorkerResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    return this.#send({ id: this.#nextId++, sql, parameters });
  }

  /** Closes PGlite after every statement already sent, then waits for the thread to end. Safe to call twice. */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  /** Ends the thread at once, as a crash would: what it owed fails as unavailable (tests; a last resort). */
  async terminate(): Promise<void> {
    await this.#worker.terminate();
  }

  async #close(): Promise<void> {
    if (this.#failure) return;
    const closed = this.#send({ id: this.#nextId++, close: true }).catch(() => {});
    this.#failure = new Error("the embedded database is closed");
    const exited = once(this.#worker, "exit");
    await closed;
    const timer = setTimeout(() => void this.#worker.terminate(), CLOSE_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  #send(request: WorkerRequest): Promise<WorkerResult> {
    const answer = new Promise<WorkerResult>((resolve, reject) => this.#pending.set(request.id, { resolve, reject }));
    // in flight, the worker keeps the process alive, or a script awaiting its only query would just end
    if (this.#pending.size === 1) this.#worker.ref();
    this.#outbox.push(request);
    if (this.#outbox.length === 1) queueMicrotask(() => this.#flush());
    return answer;
  }

  /** Everything asked for in this tick goes in one message. */
  #flush(): void {
    const batch = this.#outbox;
    this.#outbox = [];
    if (batch.length === 0) return;
    try {
      this.#worker.postMessage(batch);
    } catch {
      // a parameter that cannot be cloned (a function, a symbol): fail that statement alone
      for (const request of batch) {
        try {
          this.#worker.postMessage([request]);
        } catch (err) {
          this.#settle(request.id, (p) => p.reject(err instanceof Error ? err : new Error(String(err))));
        }
      }
    }
  }

  #receive(replies: WorkerReply[]): void {
    for (const reply of replies) {
      this.#settle(reply.id, (pending) => {
        if ("error" in reply) pending.reject(deserializeError(reply.error));
        else if ("closed" in reply) pending.resolve({ rows: [] });
        else pending.resolve(withBuffers(reply));
      });
    }
  }

  #settle(id: number, how: (pending: Pending) => void): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
    how(pending);
  }

  #fail(error: Error): void {
    // an exit after close() is the expected end, not a failure to report
    if (!this.#closing || !this.#failure) this.#failure = error;
    this.#outbox = [];
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#worker.unref();
    for (const { reject } of pending) reject(error);
  }
}

/** bytea arrives as a Uint8Array (structured clone drops Buffer's prototype); callers get a Buffer, as from pg. */
function withBuffers(reply: Extract<WorkerReply, { rows: unknown }>): WorkerResult {
  if (reply.bytea) {
    for (const row of reply.rows) {
      for (const name of reply.bytea) {
        const value = row[name];
        if (value instanceof Uint8Array) row[name] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      }
    }
  }
  return { rows: reply.rows, command: reply.command, affectedRows: reply.affectedRows };
}
