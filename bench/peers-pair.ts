// What the two processes of bench/peers-floor.ts and bench/peers-lean.ts share: the front opens its HTTP/1.1 port
// once its stream to the back answers; each prints {"port": N} on stdout once it serves; the role comes from argv.
import type { Server } from "node:http";
import type { ClientHttp2Stream, Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";

/** Listens on a free port of 127.0.0.1 and prints it for the parent (bench/peers-processes.ts). */
export function listenAndPrint(server: Server | Http2Server): void {
  server.listen(0, "127.0.0.1", () =>
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`),
  );
}

/** The front: clients' sockets without Nagle's delay, served once the stream to the back is open. */
export function serveWhenConnected(server: Server, stream: ClientHttp2Stream): void {
  server.on("connection", (socket) => socket.setNoDelay(true));
  stream.once("response", () => listenAndPrint(server));
}

/** Runs `back <upstream port>` or `front <back port>` as argv says. */
export async function runRole(
  roles: { back: (port: number) => unknown; front: (port: number) => unknown },
  usage: string,
): Promise<void> {
  const [role, port] = process.argv.slice(2);
  if (role === "back") await roles.back(Number(port));
  else if (role === "front") await roles.front(Number(port));
  else throw new Error(`usage: ${usage}`);
}
