// A TCP proxy in front of the test PostgreSQL that a test can cut and restore, or make lose the reply of a statement
// the server has committed: database outages for one test without ever touching the server other tests share.
import { createConnection, createServer, type Socket } from "node:net";

export interface DatabaseProxy {
  /** The database URL through the proxy (same database, user and options as the target). */
  url: string;
  /** Refuses new connections (ECONNREFUSED) and drops every open one, until restore(). */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  /**
   * The next message that carries `containing` (a value bound to a statement, or its text) reaches the server; the
   * replies pass until the server is done with its transaction (the statement's own, or the COMMIT that follows), and
   * that reply is dropped with the connection. Resolves once it is.
   */
  loseNextReply(containing: string): Promise<void>;
  /** How many replies were lost so far. */
  readonly lostReplies: number;
  close(): Promise<void>;
}

// The backend's ReadyForQuery message when no transaction is open: 'Z', length 5, status 'I' (idle).
const READY_IDLE = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);

export async function startDatabaseProxy(targetUrl: string): Promise<DatabaseProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  const targetHost = target.hostname;
  const open = new Set<Socket>();
  let lose: { containing: Buffer; lost: () => void } | undefined;
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
    let losing = false;
    client.on("data", (chunk: Buffer) => {
      if (lose && chunk.includes(lose.containing)) {
        losing = true;
        upstream.once("close", lose.lost);
        lose = undefined;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      // idle again: the transaction has ended (committed, for the statements tests lose); only then cut, so its
      // fate is certain and the client cannot know it
      if (!losing || !chunk.includes(READY_IDLE)) return void client.write(chunk);
      lost++;
      drop();
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
    loseNextReply: (containing) =>
      new Promise<void>((resolve) => (lose = { containing: Buffer.from(containing), lost: resolve })),
    get lostReplies() {
      return lost;
    },
    close: async () => {
      if (server.listening) await cut();
    },
  };
}
