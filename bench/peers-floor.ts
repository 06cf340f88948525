// The peers benchmark's floor for Iris's shape: the least a relay through two Node.js processes costs, with none of
// Iris's work. `node bench/peers-floor.ts back <upstream port>` keeps one HTTP/2 (h2c) stream open to the front, as an
// agent keeps its Connect stream to the coordinator; `node bench/peers-floor.ts front <back port>` serves clients over
// HTTP/1.1 and hands each request's body down that one stream as a length-prefixed message. The back sends it to the
// upstream as it is (node:http, a kept-alive socket) and returns what the upstream answers, a message per read; the
// front writes those bytes to the client. No authentication, classification, routing, journal, sealing or protobuf:
// what this adds over a direct call is the two processes and the hop between them. Each prints {"port": N} on stdout
// once it listens (the back) or is connected (the front), and serves until killed.
import { Agent, createServer, request, type ServerResponse } from "node:http";
import { connect, createServer as createH2Server, type ServerHttp2Stream } from "node:http2";
import { listenAndPrint, runRole, serveWhenConnected } from "./peers-pair.ts";

/** One message: 4 bytes of length, then a JSON header line, then the body bytes. */
function frame(header: object, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.from(`${JSON.stringify(header)}\n`);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(head.length + body.length);
  return Buffer.concat([length, head, body]);
}

/** Splits a byte stream into messages. */
function messages(onMessage: (header: Record<string, unknown>, body: Buffer) => void): (data: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (data) => {
    pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) return;
      const message = pending.subarray(4, 4 + length);
      pending = pending.subarray(4 + length);
      const newline = message.indexOf(10);
      onMessage(JSON.parse(message.subarray(0, newline).toString()), message.subarray(newline + 1));
    }
  };
}

function back(upstreamPort: number): void {
  const agent = new Agent({ keepAlive: true });
  const server = createH2Server();
  server.on("stream", (stream: ServerHttp2Stream) => {
    stream.respond({ ":status": 200 });
    stream.on(
      "data",
      messages((header, body) => {
        const id = header.id as number;
        const call = request(
          {
            host: "127.0.0.1",
            port: upstreamPort,
            path: "/v1/chat/completions",
            method: "POST",
            agent,
            headers: { "content-type": "application/json", "content-length": body.length },
          },
          (response) => {
            stream.write(frame({ id, type: response.headers["content-type"] ?? "application/json" }));
            response.on("data", (chunk: Buffer) => stream.write(frame({ id }, chunk)));
            response.on("end", () => stream.write(frame({ id, end: true })));
          },
        );
        call.setNoDelay(true);
        call.end(body);
      }),
    );
  });
  listenAndPrint(server);
}

function front(backPort: number): void {
  const session = connect(`http://127.0.0.1:${backPort}`);
  const stream = session.request({ ":method": "POST", ":path": "/relay" }, { endStream: false });
  const open = new Map<number, ServerResponse>();
  let next = 0;
  stream.on(
    "data",
    messages((header, body) => {
      const res = open.get(header.id as number);
      if (!res) return;
      if (header.type !== undefined) res.writeHead(200, { "content-type": header.type as string });
      else if (header.end) {
        open.delete(header.id as number);
        res.end();
      } else res.write(body);
    }),
  );
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => {
      const id = next++;
      open.set(id, res);
      stream.write(frame({ id }, Buffer.concat(parts)));
    });
  });
  serveWhenConnected(server, stream);
}

await runRole({ back, front }, "node bench/peers-floor.ts back <upstream port> | front <back port>");
