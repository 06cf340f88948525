// A TCP proxy in front of the test PostgreSQL that a test can cut and restore, or make lose a COMMIT's reply:
// database outages for one test without ever touching the server other tests share.
import { createConnection, createServer, type Socket } from "node:net";

export interface DatabaseProxy {
  /** The database URL through the proxy (same database, user and options as the target). */
  url: string;
  /** Refuses new connections (ECONNREFUSED) and drops every open one, until restore(). */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  /** The next COMMIT reaches the server and commits, but its reply is dropped with the connection. */
  loseNextCommitReply(): Promise<void>;
  /** How many COMMIT replies were lost so far. */
  readonly lostCommitReplies: number;
  close(): Promise<void>;
}

// A frontend Query message: 'Q', a 4-byte length, the text, a NUL. Kysely sends "commit" as a simple query.
const COMMIT_QUERY = Buffer.from("commit\0");
// The backend's CommandComplete tag for it.
const COMMIT_DONE = Buffer.from("COMMIT\0");

export async function startDatabaseProxy(targetUrl: string): Promise<DatabaseProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  const targetHost = target.hostname;
  const open = new Set<Socket>();
  let loseCommit: (() => void) | undefined;
  let lost = 0;

  const server = createServer((client) => {
    const upstream = createConnection({ host: targetHost, port: targetPort });
    open.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    let swallowing = false;
    client.on("data", (chunk: Buffer) => {
      const at = chunk.indexOf(COMMIT_QUERY);
      if (loseCommit && at >= 5 && chunk[at - 5] === 0x51) {
        swallowing = true;
        const done = loseCommit;
        loseCommit = undefined;
        upstream.once("close", done);
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!swallowing) return void client.write(chunk);
      // the server has committed once it says so: only then cut, so the commit's fate is certain
      if (chunk.includes(COMMIT_DONE)) {
        lost++;
        drop();
      }
    });
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as { port: number }).port;
  const url = new URL(targetUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);

  const cut = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of open) socket.destroy();
    open.clear();
    await closed;
  };
  return {
    url: url.toString(),
    cut,
    restore: () => listen(port),
    loseNextCommitReply: () => new Promise<void>((resolve) => (loseCommit = resolve)),
    get lostCommitReplies() {
      return lost;
    },
    close: async () => {
      if (server.listening) await cut();
    },
  };
}
