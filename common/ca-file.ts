// A private CA for clients of a coordinator whose certificate no public CA signed (COORDINATOR_CA_PATH for the agent,
// --ca / IRIS_CA_PATH for the CLI and the SDK): its PEM certificates are trusted beside Node's bundled roots.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Thrown when the file cannot be read or holds no certificate; the message names the file and what is wrong. */
export class CaFileError extends Error {}

/** The PEM certificates in `path` (one or more), each checked to parse. */
export function readCaFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CaFileError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new CaFileError(`${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new CaFileError(`${path} holds a certificate that does not parse: ${(err as Error).message}`);
    }
  }
  return blocks;
}

/** What `ca` must be for Node's TLS to trust these certificates as well as the public roots it trusts by default. */
export function trustedWith(extra: readonly string[]): string[] {
  return [...tls.rootCertificates, ...extra];
}
