// Statements the request path runs for every request, prepared once per PostgreSQL connection: the server parses
// and plans them the first time and then only binds and runs them (bench/journal.ts: ~0.45 ms of the backend's CPU
// per request saved). Opt in with `prepared(sql…)`; everything else goes through the unnamed statement as before.
import { CompiledQuery, sql, type RawBuilder } from "kysely";
import pg from "pg";

/** The comment that marks a statement for preparing; PGlite and the server read it as a comment. */
export const PREPARED_MARK = "/* prepared */ ";

/**
 * Names at most this many statements per connection: a statement's text depends on its batch's shape (which
 * columns its rows set), so the set is small but not fixed; past it, a new text runs unprepared.
 */
export const MAX_PREPARED_PER_CONNECTION = 64;

/** The statement, marked to be prepared on each connection that runs it. */
export function prepared<T>(statement: RawBuilder<T>): RawBuilder<T> {
  return sql<T>`${sql.raw(PREPARED_MARK)}${statement}`;
}

/** A statement whose text the caller wrote (no Kysely nodes to build and compile), marked to be prepared. */
export function preparedText<R>(text: string, parameters: readonly unknown[]): CompiledQuery<R> {
  return CompiledQuery.raw(PREPARED_MARK + text, [...parameters]) as CompiledQuery<R>;
}

/**
 * A pg client that runs marked statements as named prepared statements. pg parses a name once per connection (and
 * forgets a name whose parse failed); the names are this connection's own, so two connections never clash.
 */
export class PreparingClient extends pg.Client {
  readonly #names = new Map<string, string>();

  override query = ((...args: unknown[]) => {
    const [text, values, callback] = args;
    if (typeof text === "string" && text.startsWith(PREPARED_MARK) && Array.isArray(values) && callback === undefined) {
      const name = this.#nameOf(text);
      if (name) return super.query({ name, text, values });
    }
    return (super.query as (...a: unknown[]) => unknown)(...args);
  }) as pg.Client["query"];

  #nameOf(text: string): string | undefined {
    let name = this.#names.get(text);
    if (name === undefined && this.#names.size < MAX_PREPARED_PER_CONNECTION) {
      name = `iris_${this.#names.size + 1}`;
      this.#names.set(text, name);
    }
    return name;
  }
}
