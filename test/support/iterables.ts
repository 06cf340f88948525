// Async iterables for stream tests: a list as a request stream, a response stream read to its end.

/** `items` as an async iterable (what a streaming client sends). */
export async function* each<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

/** Every message of `messages`, once it ends (throws what it throws). */
export async function drain<T>(messages: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const message of messages) all.push(message);
  return all;
}
