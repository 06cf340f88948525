// The TLS port's front door and its certificate: each connection's first byte is peeked, a TLS ClientHello goes on
// to the TLS server, and plaintext gets an answer saying to use https:// where its protocol has room for one (an
// HTTP/1.1 400; on h2c, each stream's error: gRPC status, Connect JSON or text). The certificate's dates are checked at
// start: expired, not yet valid, or expiring within EXPIRY_WARNING_DAYS is logged.
import { X509Certificate } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Code } from "@connectrpc/connect";
import type { Logger } from "pino";
import { TLS_PORT_MESSAGE } from "../common/tls-fault.ts";
import { looksLikeHttp2, ReplaySocket } from "./single-port.ts";

/** A certificate expiring within this many days is warned about at start. */
const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;
/** A TLS record of type handshake: how every TLS connection starts (the ClientHello). */
const TLS_HANDSHAKE = 0x16;
/** How long a plaintext client that was answered may keep sending before its connection is closed. */
const LINGER_MS = 1_000;

export interface CertificateVerdict {
  level: "error" | "warn";
  message: string;
  validFrom: string;
  validTo: string;
}

/** What is wrong with the certificate's dates at `now`, or undefined when it is valid for more than 14 days. */
export function certificateVerdict(certificate: X509Certificate, now: number): CertificateVerdict | undefined {
  const validFrom = new Date(certificate.validFrom);
  const validTo = new Date(certificate.validTo);
  const dates = { validFrom: validFrom.toISOString(), validTo: validTo.toISOString() };
  if (now >= validTo.getTime()) {
    return {
      level: "error",
      message: `the TLS certificate (TLS_CERT_PATH) expired on ${dates.validTo}: clients refuse it until it is renewed`,
      ...dates,
    };
  }
  if (now < validFrom.getTime()) {
    const from = dates.validFrom;
    return {
      level: "error",
      message: `the TLS certificate (TLS_CERT_PATH) is not valid before ${from}: clients refuse it until then`,
      ...dates,
    };
  }
  const daysLeft = (validTo.getTime() - now) / DAY_MS;
  if (daysLeft > EXPIRY_WARNING_DAYS) return undefined;
  const left = daysLeft < 1 ? `in ${Math.max(1, Math.round(daysLeft * 24))} h` : `in ${Math.floor(daysLeft)} days`;
  return {
    level: "warn",
    message:
      `the TLS certificate (TLS_CERT_PATH) expires on ${dates.validTo}, ${left}: renew it before clients ` +
      `refuse it`,
    ...dates,
  };
}

/** Logs what is wrong with the certificate in `pem` (its first certificate: the server's own). */
export function checkCertificate(
  pem: Buffer,
  certPath: string,
  logger: Logger,
  now = Date.now(),
): CertificateVerdict | undefined {
  let verdict: CertificateVerdict | undefined;
  try {
    verdict = certificateVerdict(new X509Certificate(pem), now);
  } catch (err) {
    logger.warn({ err, certPath }, "could not read the TLS certificate's dates");
    return undefined;
  }
  if (verdict)
    logger[verdict.level]({ certPath, validFrom: verdict.validFrom, validTo: verdict.validTo }, verdict.message);
  return verdict;
}

export interface TlsFrontOptions {
  /** A connection that sends nothing for this long is closed. */
  firstBytesTimeoutMs: number;
  /** Says whether to serve a new connection at all (a per-address cap closes it and says no). */
  admit?: (socket: net.Socket) => boolean;
}

/** A TCP server in front of `secure`: TLS goes on to it; plaintext is answered (tlsPortAnswer) and closed. */
export function createTlsFront(secure: net.Server, options: TlsFrontOptions): net.Server {
  const plaintextH2 = createPlaintextHttp2(options.firstBytesTimeoutMs);
  return net.createServer({ noDelay: true }, (socket) => {
    if (options.admit && !options.admit(socket)) return;
    let head: Buffer = Buffer.alloc(0);
    const stopPeeking = () => {
      socket.off("data", onData);
      socket.off("error", onEarlyError);
      socket.off("timeout", onSilence);
      socket.setTimeout(0);
      socket.pause();
    };
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head[0] === TLS_HANDSHAKE) {
        stopPeeking();
        // the TLS socket reads what is buffered before its handle (Node's TLSSocket initRead)
        socket.unshift(head);
        secure.emit("connection", socket);
        return;
      }
      const isHttp2 = looksLikeHttp2(head);
      if (isHttp2 === undefined) return; // a partial HTTP/2 preface: wait for the rest
      stopPeeking();
      if (isHttp2) plaintextH2.emit("connection", new ReplaySocket(socket, head));
      else answerHttp1(socket, head);
    };
    const onEarlyError = () => socket.destroy();
    const onSilence = () => socket.destroy();
    socket.on("data", onData);
    socket.on("error", onEarlyError);
    socket.setTimeout(options.firstBytesTimeoutMs, onSilence);
  });
}

interface PlaintextAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The error each protocol understands, from the request's content type: gRPC status, Connect JSON, else text. */
function plaintextAnswer(contentType: string, authority: string | undefined): PlaintextAnswer {
  const message = `${TLS_PORT_MESSAGE}${authority ?? ""}`;
  if (contentType.startsWith("application/grpc")) {
    // trailers-only: gRPC and gRPC-Web clients read the status from these headers
    return {
      status: 200,
      headers: {
        "content-type": contentType,
        "grpc-status": String(Code.FailedPrecondition),
        "grpc-message": encodeURIComponent(message),
      },
      body: "",
    };
  }
  if (/^application\/(connect\+)?(json|proto)/.test(contentType)) {
    return {
      status: 400,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: "failed_precondition", message }),
    };
  }
  return { status: 400, headers: { "content-type": "text/plain; charset=utf-8" }, body: `${message}\n` };
}

/** HTTP/1.x (or anything else in clear): the answer, then the connection closes. */
function answerHttp1(socket: net.Socket, head: Buffer): void {
  const text = head.toString("latin1");
  const header = (name: string) => new RegExp(`\r\n${name}:[ \t]*([^\r\n]+)`, "i").exec(text)?.[1]?.trim();
  const answer = plaintextAnswer(header("content-type") ?? "", header("host"));
  const headers = { ...answer.headers, "content-length": String(Buffer.byteLength(answer.body)), connection: "close" };
  const lines = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.on("error", () => socket.destroy());
  socket.end(`HTTP/1.1 ${answer.status} ${http.STATUS_CODES[answer.status]}\r\n${lines}\r\n${answer.body}`);
  // read (and drop) what the client still sends, so it sees the answer rather than a reset
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/** h2c in clear: every stream gets its protocol's answer; the session closes when idle. */
function createPlaintextHttp2(idleTimeoutMs: number): http2.Http2Server {
  const server = http2.createServer();
  server.on("session", (session) => session.setTimeout(idleTimeoutMs, () => session.destroy()));
  server.on("stream", (stream, headers) => {
    stream.on("error", () => stream.destroy());
    const answer = plaintextAnswer(String(headers["content-type"] ?? ""), headers[":authority"]);
    stream.respond({ ":status": answer.status, ...answer.headers }, { endStream: answer.body === "" });
    if (answer.body !== "") stream.end(answer.body);
  });
  return server;
}
