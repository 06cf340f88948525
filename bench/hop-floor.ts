// The floors under a cross-coordinator hop (issue #12), measured between two processes as the coordinators are: a
// round trip of 200 bytes over a plain TCP connection (no NATS at all), through nats-server with the NATS protocol
// written by hand (no client library), and through nats-server with the coordinators' own client (NatsBus, on
// @nats-io/transport-node). bench/cluster-hop.ts interleaves them with its chats, so each meets the same idle or busy
// processes a chat does. Run as a script, this file is the answering process.
import { spawn } from "node:child_process";
import { createConnection, createServer, type AddressInfo, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { NatsBus } from "../coordinator/cluster/bus-nats.ts";

export interface HopFloors {
  /** One round trip each, ms. */
  tcp(): Promise<number>;
  rawNats(): Promise<number>;
  bus(): Promise<number>;
  close(): Promise<void>;
}

const payload = new Uint8Array(200).fill(120);

/** Starts the answering process and connects to it three ways. */
export async function startHopFloors(natsUrl: string, subject: string): Promise<HopFloors> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), natsUrl, subject], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (line: Buffer) => resolve(Number(line.toString().trim())));
    child.once("exit", (code) => reject(new Error(`the hop floor's process exited with ${code}`)));
  });
  const tcp = createConnection({ port, host: "127.0.0.1", noDelay: true });
  await new Promise<void>((resolve, reject) => tcp.once("connect", resolve).once("error", reject));
  const raw = await RawNats.connect(natsUrl);
  const inbox = `${subject}.raw-reply`;
  raw.subscribe(inbox);
  await raw.ping();
  const bus = await NatsBus.connect({ servers: natsUrl, name: "bench-floor-asker", logger: pino({ level: "silent" }) });
  const timed = async (exchange: () => Promise<unknown>) => {
    const before = performance.now();
    await exchange();
    return performance.now() - before;
  };
  return {
    tcp: () =>
      timed(() => {
        const answered = readBytes(tcp, payload.length);
        tcp.write(payload);
        return answered;
      }),
    rawNats: () =>
      timed(() => {
        const answered = raw.next();
        raw.publish(`${subject}.raw`, payload, inbox);
        return answered;
      }),
    bus: () => timed(() => bus.request(`${subject}.bus`, payload, 5_000)),
    async close() {
      tcp.destroy();
      raw.close();
      await bus.close();
      child.kill();
    },
  };
}

/** Resolves once `count` bytes have arrived (an echo may come back in pieces). */
function readBytes(socket: Socket, count: number): Promise<void> {
  return new Promise((resolve) => {
    let got = 0;
    const onData = (data: Buffer) => {
      got += data.length;
      if (got < count) return;
      socket.off("data", onData);
      resolve();
    };
    socket.on("data", onData);
  });
}

/**
 * Just enough of the NATS client protocol for a round trip: CONNECT without echo, SUB, PUB, PING/PONG, and MSG frames
 * parsed from a buffer (a frame may span reads). A measuring stick, not a client: no reconnects, no headers.
 */
class RawNats {
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: Array<(message: RawMessage) => void> = [];
  private nextSid = 1;
  private pong?: () => void;
  onMessage?: (message: RawMessage) => void;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (data: Buffer) => this.read(data));
  }

  static async connect(url: string): Promise<RawNats> {
    const { hostname, port } = new URL(url);
    const socket = createConnection({ host: hostname, port: Number(port || 4222), noDelay: true });
    // the server speaks first (INFO)
    await new Promise<void>((resolve, reject) => socket.once("data", () => resolve()).once("error", reject));
    const client = new RawNats(socket);
    socket.write('CONNECT {"verbose":false,"pedantic":false,"echo":false,"protocol":1}\r\n');
    await client.ping();
    return client;
  }

  subscribe(subject: string): void {
    this.socket.write(`SUB ${subject} ${this.nextSid++}\r\n`);
  }

  publish(subject: string, data: Uint8Array, reply?: string): void {
    const head = reply ? `PUB ${subject} ${reply} ${data.length}\r\n` : `PUB ${subject} ${data.length}\r\n`;
    this.socket.write(Buffer.concat([Buffer.from(head), data, crlf]));
  }

  /** The next message delivered to this connection. */
  next(): Promise<RawMessage> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Resolves once the server has answered a PING: everything written before it has been processed. */
  ping(): Promise<void> {
    return new Promise((resolve) => {
      this.pong = resolve;
      this.socket.write("PING\r\n");
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private read(data: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : data;
    for (;;) {
      const end = this.buffer.indexOf(crlf);
      if (end < 0) return;
      const line = this.buffer.subarray(0, end).toString();
      if (line.startsWith("MSG ")) {
        // MSG <subject> <sid> [reply-to] <#bytes>
        const parts = line.split(" ");
        const size = Number(parts[parts.length - 1]);
        if (this.buffer.length < end + 2 + size + 2) return; // the payload has not all arrived
        const message = {
          subject: parts[1]!,
          reply: parts.length === 5 ? parts[3] : undefined,
          data: this.buffer.subarray(end + 2, end + 2 + size),
        };
        this.buffer = this.buffer.subarray(end + 2 + size + 2);
        const waiter = this.waiting.shift();
        if (waiter) waiter(message);
        else this.onMessage?.(message);
        continue;
      }
      this.buffer = this.buffer.subarray(end + 2);
      if (line === "PING") this.socket.write("PONG\r\n");
      else if (line === "PONG") this.pong?.();
      else if (line.startsWith("-ERR")) throw new Error(`nats-server: ${line}`);
      // INFO and +OK need nothing
    }
  }
}

const crlf = Buffer.from("\r\n");

interface RawMessage {
  subject: string;
  reply?: string;
  data: Buffer;
}

/** The answering process: a TCP echo, a hand-written NATS responder and a NatsBus responder. */
async function answer(natsUrl: string, subject: string): Promise<void> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on("data", (data) => socket.write(data));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const raw = await RawNats.connect(natsUrl);
  raw.onMessage = (message) => {
    if (message.reply) raw.publish(message.reply, message.data);
  };
  raw.subscribe(`${subject}.raw`);
  await raw.ping();
  const bus = await NatsBus.connect({
    servers: natsUrl,
    name: "bench-floor-answerer",
    logger: pino({ level: "silent" }),
  });
  bus.serve(`${subject}.bus`, (data) => data);
  await bus.flush();
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  // stop with the benchmark that started it
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 500).unref();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [natsUrl, subject] = process.argv.slice(2);
  answer(natsUrl!, subject!).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
