// Kysely's dialect for PGlite in a worker thread: SQL runs off the request path's thread, one connection shared
// fairly — statements outside transactions are pipelined, a transaction holds the connection until it ends.
import {
  AbortedTransactionError,
  type CompiledQuery,
  createQueryId,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  IdentifierNode,
  type Kysely,
  PGliteAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  type QueryResult,
  RawNode,
  type TransactionSettings,
} from "kysely";
import type { PgliteWorkerClient } from "./pglite-worker-client.ts";

/**
 * PGlite is one session, so a transaction needs it alone from BEGIN to COMMIT; everything else may share it.
 * Statements are sent at once (the worker runs them in arrival order) unless a transaction holds the session or
 * one is waiting for it: then they queue, and are sent in order when it ends.
 */
class SessionGate {
  #holder: object | undefined;
  readonly #waiting: (() => void)[] = [];

  /**
   * Calls `send` now if `lease` may use the session, else once it may; `send` must hand its statement over
   * synchronously.
   */
  use<T>(lease: object, send: () => Promise<T>): Promise<T> {
    if (this.#holder === lease || this.#isFree()) return send();
    return new Promise<T>((resolve, reject) => this.#waiting.push(() => void send().then(resolve, reject)));
  }

  /** Resolves once `lease` holds the session, after everything queued before it has been sent. */
  hold(lease: object): Promise<void> {
    if (this.#isFree()) {
      this.#holder = lease;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.#waiting.push(() => ((this.#holder = lease), resolve())));
  }

  holds(lease: object): boolean {
    return this.#holder === lease;
  }

  /** Ends `lease`'s hold; what queued behind it is sent now, up to the next transaction. */
  release(lease: object): void {
    if (this.#holder !== lease) return;
    this.#holder = undefined;
    while (this.#holder === undefined && this.#waiting.length > 0) this.#waiting.shift()!();
  }

  #isFree(): boolean {
    return this.#holder === undefined && this.#waiting.length === 0;
  }
}

class WorkerConnection implements DatabaseConnection {
  constructor(
    readonly client: PgliteWorkerClient,
    readonly gate: SessionGate,
  ) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    let result;
    try {
      result = await this.gate.use(this, () => this.client.query(compiledQuery.sql, compiledQuery.parameters));
    } catch (err) {
      // the error was made on a message's arrival: add the stack of the code that ran the query, as Kysely's drivers do
      const caller = new Error().stack?.split("\n").slice(1).join("\n");
      if (err instanceof Error && caller) err.stack = `${err.stack ?? String(err)}\n${caller}`;
      throw err;
    }
    const { rows, command, affectedRows } = result;
    // the same shape as Kysely's PostgresDriver, so results do not depend on the engine
    if (command === "COMMIT" || command === "ROLLBACK") return { rows: [{ command }] as R[] };
    const changes = command === "INSERT" || command === "UPDATE" || command === "DELETE" || command === "MERGE";
    return { rows: rows as R[], numAffectedRows: changes ? BigInt(affectedRows ?? 0) : undefined };
  }

  // biome-ignore lint/correctness/useYield: the interface asks for a generator; this one refuses before yielding
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error("streaming is not supported by the embedded database");
  }
}

class PgliteWorkerDriver implements Driver {
  readonly #gate = new SessionGate();
  readonly #client: PgliteWorkerClient;
  #destroying: Promise<void> | undefined;

  constructor(client: PgliteWorkerClient) {
    this.#client = client;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new WorkerConnection(this.#client, this.#gate);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await this.#gate.hold(connection);
    let statement = "begin";
    if (settings.isolationLevel || settings.accessMode) {
      statement = [
        "start transaction",
        settings.isolationLevel && `isolation level ${settings.isolationLevel}`,
        settings.accessMode,
      ]
        .filter(Boolean)
        .join(" ");
    }
    await this.#client.query(statement, []);
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const result = this.#end(connection, "commit");
    // PostgreSQL completes COMMIT with a ROLLBACK tag if an earlier statement left the transaction aborted
    if ((await result).command === "ROLLBACK") throw new AbortedTransactionError();
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await this.#end(connection, "rollback");
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler["compileQuery"]): Promise<void> {
    await this.#savepointCommand(connection, "savepoint", name, compile);
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: QueryCompiler["compileQuery"],
  ): Promise<void> {
    await this.#savepointCommand(connection, "rollback to", name, compile);
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: QueryCompiler["compileQuery"],
  ): Promise<void> {
    await this.#savepointCommand(connection, "release", name, compile);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    // a transaction whose BEGIN failed (Kysely then neither commits nor rolls back) must not keep the session
    if (this.#gate.holds(connection)) void this.#end(connection, "rollback").catch(() => {});
  }

  /** Waits for everything queued (transactions included), then closes PGlite and ends the worker. */
  destroy(): Promise<void> {
    return (this.#destroying ??= (async () => {
      const lease = {};
      await this.#gate.hold(lease);
      try {
        await this.#client.close();
      } finally {
        this.#gate.release(lease); // what queued meanwhile is refused by the closed client, not left waiting
      }
    })());
  }

  /** Sends COMMIT or ROLLBACK and, in the same tick, lets what queued behind the transaction follow it. */
  #end(connection: DatabaseConnection, statement: "commit" | "rollback") {
    const ended = this.#client.query(statement, []);
    this.#gate.release(connection);
    return ended;
  }

  async #savepointCommand(
    connection: DatabaseConnection,
    command: string,
    name: string,
    compile: QueryCompiler["compileQuery"],
  ) {
    // IdentifierNode quotes the name, as Kysely's own drivers do
    const node = RawNode.createWithChildren([RawNode.createWithSql(`${command} `), IdentifierNode.create(name)]);
    await connection.executeQuery(compile(node, createQueryId()));
  }
}

/**
 * PGliteAdapter says "one connection", which makes Kysely queue every statement behind the previous one's answer.
 * Here the driver's gate keeps transactions exclusive instead, so statements outside them can be pipelined; the
 * migration lock stays a no-op (the migrator's transaction holds the only session).
 */
class PgliteWorkerAdapter extends PGliteAdapter {
  override get supportsMultipleConnections(): boolean {
    return true;
  }
}

/**
 * PGlite in a worker thread, for `new Kysely({ dialect })`; the client is already started (and owned by the driver).
 */
export class PgliteWorkerDialect implements Dialect {
  constructor(readonly client: PgliteWorkerClient) {}

  createAdapter(): DialectAdapter {
    return new PgliteWorkerAdapter();
  }

  createDriver(): Driver {
    return new PgliteWorkerDriver(this.client);
  }

  // biome-ignore lint/suspicious/noExplicitAny: Kysely's Dialect interface takes an untyped instance here
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new PostgresIntrospector(db);
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }
}
