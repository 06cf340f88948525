// One cleartext port for HTTP/1.1 and HTTP/2 (h2c): peeks at each connection's first bytes and hands it on.
import { Duplex } from "node:stream";
import net from "node:net";
import type { Http2Server } from "node:http2";
import type { Server as Http1Server } from "node:http";

const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface SinglePortOptions {
  /** A connection that sends nothing for this long is closed before it reaches either server. */
  firstBytesTimeoutMs: number;
  /** Says whether to serve a new connection at all (a per-address cap closes it and says no). */
  admit?: (socket: net.Socket) => boolean;
}

/**
 * A socket whose first bytes were already read: it replays them, then relays the real socket. Every byte passes
 * through JS, so the one-port server below does without it; the TLS port's plaintext HTTP/2 still uses it.
 */
export class ReplaySocket extends Duplex {
  constructor(
    readonly socket: net.Socket,
    head: Buffer,
  ) {
    super({ allowHalfOpen: false });
    this.push(head);
    socket.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
    socket.on("timeout", () => this.emit("timeout"));
  }
  override _read(): void {
    this.socket.resume();
  }
  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.socket.cork();
    for (const { chunk } of chunks) this.socket.write(chunk);
    this.socket.uncork();
    // the last write's drain is not awaited: net.Socket buffers and applies its own backpressure
    callback();
  }
  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy(error ?? undefined);
    callback(error);
  }
  // The HTTP servers call these socket methods; they go to the real socket.
  get remoteAddress() {
    return this.socket.remoteAddress;
  }
  get remotePort() {
    return this.socket.remotePort;
  }
  get remoteFamily() {
    return this.socket.remoteFamily;
  }
  get localAddress() {
    return this.socket.localAddress;
  }
  get localPort() {
    return this.socket.localPort;
  }
  get bytesWritten() {
    return this.socket.bytesWritten;
  }
  get bytesRead() {
    return this.socket.bytesRead;
  }
  get encrypted() {
    return false;
  }
  address() {
    return this.socket.address();
  }
  setTimeout(ms: number, callback?: () => void) {
    this.socket.setTimeout(ms);
    if (callback) this.once("timeout", callback);
    return this;
  }
  setNoDelay(noDelay?: boolean) {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number) {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }
  ref() {
    this.socket.ref();
    return this;
  }
  unref() {
    this.socket.unref();
    return this;
  }
}

/** True when `head` starts like an HTTP/2 connection preface; undefined when more bytes are needed to tell. */
export function looksLikeHttp2(head: Buffer): boolean | undefined {
  const n = Math.min(head.length, preface.length);
  if (!head.subarray(0, n).equals(preface.subarray(0, n))) return false;
  return n === preface.length ? true : undefined;
}

/** A TCP server that routes each connection to `http1` or `http2` by its first bytes. */
export function createSinglePortServer(http1: Http1Server, http2: Http2Server, options: SinglePortOptions): net.Server {
  // Node's HTTP/2 wraps a handle-less socket in a JSStreamSocket, which cannot ask the kernel for the peer's
  // address: give it the real socket's, or every h2c caller's address (req.ip, rate limits, logs) is empty.
  http2.on("session", (session) => {
    const wrapped = session.socket as unknown as { stream?: unknown; _peername?: unknown };
    const replay = wrapped.stream;
    if (replay instanceof ReplaySocket) {
      wrapped._peername = { address: replay.remoteAddress, family: replay.remoteFamily, port: replay.remotePort };
    }
  });
  return net.createServer({ noDelay: true }, (socket) => {
    if (options.admit && !options.admit(socket)) return;
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const isHttp2 = looksLikeHttp2(head);
      if (isHttp2 === undefined) return; // a partial preface: wait for the rest
      socket.off("data", onData);
      socket.off("error", onEarlyError);
      socket.setTimeout(0);
      socket.off("timeout", onSilence);
      socket.pause();
      // the servers get the native socket (their reads and writes stay in C++, no JS stream per byte), with the
      // bytes read here given back the way each server takes them: HTTP/2 reads what waits in the socket's buffer
      // when its session starts; HTTP/1.1's parser reads the handle directly, so it is handed them as a 'data' event
      if (isHttp2) {
        socket.unshift(head);
        http2.emit("connection", socket);
      } else {
        http1.emit("connection", socket);
        socket.emit("data", head);
      }
    };
    const onEarlyError = () => socket.destroy();
    const onSilence = () => socket.destroy();
    socket.on("data", onData);
    socket.on("error", onEarlyError);
    socket.setTimeout(options.firstBytesTimeoutMs, onSilence);
  });
}
