// Waiting out a writable's backpressure: what a writer does when write() said its buffer is full.

/** Resolves once `writable` drains or closes (a closed one takes no more: the writer then stops on its own). */
export function drained(writable: {
  on(event: "drain" | "close", listener: () => void): unknown;
  off(event: "drain" | "close", listener: () => void): unknown;
}): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      writable.off("drain", done);
      writable.off("close", done);
      resolve();
    };
    writable.on("drain", done);
    writable.on("close", done);
  });
}
