// Where tests find NATS: NATS_URL, else the local server .ci/run starts (127.0.0.1:4222). Tests that need it skip,
// saying why, when nothing answers there; each test uses its own CLUSTER_NAME so parallel files never hear each other.
import { randomBytes } from "node:crypto";
import { connect } from "node:net";

export const testNatsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** Whether a NATS server accepts TCP connections at `url` (the first server of a list). */
export async function natsAnswers(url = testNatsUrl): Promise<boolean> {
  const first = new URL(url.split(",")[0]!.trim());
  return new Promise((resolve) => {
    const socket = connect({ host: first.hostname, port: Number(first.port || 4222) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The suffix a describe's name gets when NATS is away: the skip says why in the test output. */
export function natsSkipReason(answers: boolean, url = testNatsUrl): string {
  return answers ? "" : ` (skipped: no NATS server answers at ${url}; start one: nats-server -a 127.0.0.1 -p 4222 -js)`;
}

/** A cluster name (the subject prefix) no other test uses. */
export function uniqueClusterName(label = "test"): string {
  return `iris-${label}-${randomBytes(4).toString("hex")}`;
}
