// A private CA and server certificates for TLS tests, made with the openssl CLI: valid ones, one that expired, one
// that expires in a few days, all for IP 127.0.0.1 (so "localhost" is a wrong host).
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface KeyPair {
  cert: string;
  key: string;
}

export interface TestCertificates {
  /** The CA's certificate (PEM file): what COORDINATOR_CA_PATH / IRIS_CA_PATH point at. */
  ca: string;
  /** Valid for 30 days, for IP 127.0.0.1. */
  valid: KeyPair;
  /** Valid on 2020-01-01 only. */
  expired: KeyPair;
  /** Expires in 3 days. */
  expiringSoon: KeyPair;
}

const DAY_MS = 86_400_000;
/** openssl ca's date format: YYYYMMDDHHMMSSZ. */
const opensslDate = (ms: number) => `${new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** Makes the CA and the certificates in a fresh temporary folder. */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "iris-certs-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(dir, [
    "req",
    "-x509",
    ...ec,
    "-days",
    "30",
    "-subj",
    "/CN=Iris Test CA",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  ]);
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "01\n");
  writeFileSync(
    join(dir, "ca.cnf"),
    [
      "[ca]",
      "default_ca = test",
      "[test]",
      "database = index.txt",
      "new_certs_dir = .",
      "serial = serial",
      "default_md = sha256",
      "policy = any",
      "copy_extensions = copy",
      "unique_subject = no",
      "[any]",
      "commonName = supplied",
      "",
    ].join("\n"),
  );
  const issue = (name: string, from: number, to: number): KeyPair => {
    openssl(dir, [
      "req",
      ...ec,
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    ]);
    openssl(dir, [
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-cert",
      "ca.pem",
      "-keyfile",
      "ca.key",
      "-in",
      `${name}.csr`,
      "-out",
      `${name}.pem`,
      "-startdate",
      opensslDate(from),
      "-enddate",
      opensslDate(to),
      "-notext",
    ]);
    return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  };
  const now = Date.now();
  return {
    ca: join(dir, "ca.pem"),
    valid: issue("valid", now - DAY_MS, now + 30 * DAY_MS),
    expired: issue("expired", Date.UTC(2020, 0, 1), Date.UTC(2020, 0, 2)),
    expiringSoon: issue("soon", now - DAY_MS, now + 3 * DAY_MS),
  };
}
