// Raw client connections for tests of connection limits: a byte-level HTTP/1.1 socket and a frame-level HTTP/2 one.
import net from "node:net";
import tls from "node:tls";

export interface RawSocket {
  socket: net.Socket;
  /** Everything the server sent so far. */
  received(): string;
  /** Resolves with the time (performance.now()) the connection closed. */
  closed: Promise<number>;
}

/** Opens a TCP (or, with `tlsOptions`, TLS) connection that collects what the server says. */
export async function rawSocket(port: number, tlsOptions?: tls.ConnectionOptions): Promise<RawSocket> {
  const socket = tlsOptions ? tls.connect({ port, host: "127.0.0.1", ...tlsOptions }) : net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once(tlsOptions ? "secureConnect" : "connect", resolve);
    socket.once("error", reject);
  });
  let text = "";
  socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now())));
  return { socket, received: () => text, closed };
}

/** Writes `parts` one by one, `everyMs` apart, until the socket closes or they run out (a slow client). */
export async function drip(socket: net.Socket, parts: string[], everyMs: number): Promise<void> {
  for (const part of parts) {
    if (socket.destroyed || !socket.writable) return;
    socket.write(part);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK block (no Huffman, no indexing) for a POST to `path` on 127.0.0.1 with a JSON body to come. */
export function postHeaders(path: string): Buffer {
  const literal = (nameIndex: number, value: string) => {
    const prefix = nameIndex < 15 ? [nameIndex] : [15, nameIndex - 15];
    return Buffer.concat([Buffer.from(prefix), Buffer.from([value.length]), Buffer.from(value, "latin1")]);
  };
  // 0x83 :method POST, 0x86 :scheme http (static table); :authority (1), :path (4), content-type (31) literal
  return Buffer.concat([
    Buffer.from([0x83, 0x86]),
    literal(1, "127.0.0.1"),
    literal(4, path),
    literal(31, "application/json"),
  ]);
}

/**
 * A frame-level HTTP/2 client, as an abusive one would be: it ignores the server's SETTINGS (it only acknowledges
 * them) and opens whatever streams it is told to.
 */
export async function rawHttp2(port: number) {
  const raw = await rawSocket(port);
  const frames: Frame[] = [];
  let buffer = Buffer.alloc(0);
  raw.socket.on("data", (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 9 && buffer.length >= 9 + buffer.readUIntBE(0, 3)) {
      const length = buffer.readUIntBE(0, 3);
      const f = {
        type: buffer[3]!,
        flags: buffer[4]!,
        streamId: buffer.readUInt32BE(5) & 0x7fffffff,
        payload: buffer.subarray(9, 9 + length),
      };
      frames.push(f);
      buffer = buffer.subarray(9 + length);
      if (f.type === FrameType.SETTINGS && (f.flags & 1) === 0) raw.socket.write(frame(FrameType.SETTINGS, 1, 0));
    }
  });
  raw.socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(FrameType.SETTINGS, 0, 0)]));
  return { ...raw, frames, send: (data: Buffer) => raw.socket.write(data) };
}

/** Polls until `condition` holds (fails after `ms`). */
export async function until(condition: () => boolean, ms = 5_000): Promise<void> {
  for (const end = Date.now() + ms; !condition(); ) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
