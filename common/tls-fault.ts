// TLS faults between a client (the agent, the CLI) and the coordinator, in words: an untrusted, expired or wrong-host
// certificate, https:// to a cleartext port, http:// to the TLS port. They are permanent: retrying cannot fix them.
import type { X509Certificate } from "node:crypto";
import net from "node:net";
import tls, { type PeerCertificate } from "node:tls";

/** The coordinator's answer to plaintext on its TLS port starts with this (coordinator/tls-port.ts). */
export const TLS_PORT_MESSAGE = "the coordinator speaks TLS: use https://";

type TlsFaultKind = "untrusted" | "expired" | "not_yet_valid" | "wrong_host" | "not_tls" | "tls_port";

export interface TlsFault {
  kind: TlsFaultKind;
  /** Node's or OpenSSL's code (CERT_HAS_EXPIRED …), or the coordinator's words for plaintext on its TLS port. */
  code: string;
  /** One line for the operator: what is wrong and what setting fixes it. */
  message: string;
}

const untrustedCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
  "CERT_REVOKED",
  "CERT_CHAIN_TOO_LONG",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
]);
const kindOfCode: Record<string, TlsFaultKind> = {
  CERT_HAS_EXPIRED: "expired",
  CERT_NOT_YET_VALID: "not_yet_valid",
  ERR_TLS_CERT_ALTNAME_INVALID: "wrong_host",
  ERR_SSL_WRONG_VERSION_NUMBER: "not_tls",
  ERR_SSL_PACKET_LENGTH_TOO_LONG: "not_tls",
};

export interface FaultContext {
  /** The coordinator URL the client used. */
  url: string;
  /** The setting that adds a CA, named as this client spells it ("COORDINATOR_CA_PATH", "--ca or IRIS_CA_PATH"). */
  caSetting: string;
  /**
   * The coordinator's certificate, when the client could read it (peerCertificate): dates and names for the message.
   */
  certificate?: CertificateFacts;
}

export interface CertificateFacts {
  subject: string;
  issuer: string;
  /** The names it is valid for (subjectAltName, "DNS:iris.example.org, IP Address:127.0.0.1"). */
  names: string;
  validFrom: Date;
  validTo: Date;
}

/** The TLS fault somewhere in `err`'s cause chain, in words; undefined for any other failure. */
export function tlsFault(err: unknown, context: FaultContext): TlsFault | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e.message.includes(TLS_PORT_MESSAGE))
      return { kind: "tls_port", code: "TLS_PORT", message: tlsPortMessage(context.url) };
    if (typeof code !== "string") continue;
    const kind = untrustedCodes.has(code) ? "untrusted" : kindOfCode[code];
    if (kind) return { kind, code, message: describe(kind, code, e.message, context) };
  }
  return undefined;
}

function tlsPortMessage(url: string): string {
  const parsed = URL.parse(url);
  return parsed ? `${TLS_PORT_MESSAGE}${parsed.host} (the URL says ${parsed.protocol}//)` : TLS_PORT_MESSAGE;
}

function describe(kind: TlsFaultKind, code: string, detail: string, context: FaultContext): string {
  const cert = context.certificate;
  const host = URL.parse(context.url)?.hostname ?? context.url;
  const of = cert ? ` (${cert.subject}, issued by ${cert.issuer})` : "";
  switch (kind) {
    case "untrusted":
      return (
        `the coordinator's certificate${of} is not signed by a CA this client trusts (${code}): ` +
        `set ${context.caSetting} to the PEM file of the CA that signed it`
      );
    case "expired":
      return (
        `the coordinator's certificate${of} expired${cert ? ` on ${cert.validTo.toISOString()}` : ""} ` +
        `(${code}): the coordinator's operator must renew it`
      );
    case "not_yet_valid":
      return (
        `the coordinator's certificate${of} is not valid ` +
        `before ${cert ? cert.validFrom.toISOString() : "a later date"} (${code}): check this machine's clock or the ` +
        `certificate`
      );
    case "wrong_host":
      return (
        `the coordinator's certificate is not ` +
        `for ${host}${cert ? `: it names ${cert.names || cert.subject}` : ""} (${code}): connect with a name the ` +
        `certificate ` +
        `lists, or have it reissued`
      );
    case "not_tls":
      return (
        `the coordinator at ${context.url} does not speak TLS (${code}): use http:// for a coordinator without ` +
        `TLS_CERT_PATH`
      );
    default:
      return detail;
  }
}

/**
 * Reads the certificate the server at `url` presents, without trusting it, to say what is wrong with it (expiry date,
 * the names it is for). undefined when none can be read within `timeoutMs` (e.g. the port does not speak TLS).
 */
export function readPeerCertificate(url: string, timeoutMs = 3_000): Promise<CertificateFacts | undefined> {
  const parsed = URL.parse(url);
  if (parsed?.protocol !== "https:") return Promise.resolve(undefined);
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port: Number(parsed.port || 443),
      servername: net.isIP(host) ? undefined : host,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2", "http/1.1"],
    });
    const done = (facts: CertificateFacts | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(facts);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once("secureConnect", () => done(factsOf(socket.getPeerX509Certificate?.(), socket.getPeerCertificate())));
    socket.once("error", () => done(undefined));
  });
}

function factsOf(x509: X509Certificate | undefined, peer: PeerCertificate): CertificateFacts | undefined {
  if (!x509 && !peer?.valid_to) return undefined;
  const name = (s: string | undefined) => (s ?? "").split("\n").filter(Boolean).join(", ");
  return {
    subject: name(x509?.subject) || `CN=${peer.subject?.CN ?? "?"}`,
    issuer: name(x509?.issuer) || `CN=${peer.issuer?.CN ?? "?"}`,
    names: x509?.subjectAltName ?? peer.subjectaltname ?? "",
    validFrom: new Date(x509?.validFrom ?? peer.valid_from),
    validTo: new Date(x509?.validTo ?? peer.valid_to),
  };
}
