// TLS faults in words: which errors are permanent certificate or protocol faults, and what each message says.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { TLS_PORT_MESSAGE, tlsFault, type CertificateFacts } from "./tls-fault.ts";

/** A ConnectError wrapping a Node error with `code`, as connect-node reports a failed TLS handshake. */
const wrapped = (code: string, message = "tls failure") =>
  new ConnectError(message, Code.Internal, undefined, undefined, Object.assign(new Error(message), { code }));

const certificate: CertificateFacts = {
  subject: "CN=127.0.0.1",
  issuer: "CN=Iris Test CA",
  names: "IP Address:127.0.0.1",
  validFrom: new Date(Date.UTC(2020, 0, 1)),
  validTo: new Date(Date.UTC(2020, 0, 2)),
};
const context = { url: "https://localhost:8443", caSetting: "COORDINATOR_CA_PATH" };

describe("tlsFault", () => {
  it.each([
    [
      "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      "untrusted",
      "is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE): set COORDINATOR_CA_PATH",
    ],
    ["DEPTH_ZERO_SELF_SIGNED_CERT", "untrusted", "set COORDINATOR_CA_PATH to the PEM file of the CA that signed it"],
    ["SELF_SIGNED_CERT_IN_CHAIN", "untrusted", "(SELF_SIGNED_CERT_IN_CHAIN)"],
    ["CERT_HAS_EXPIRED", "expired", "expired on 2020-01-02T00:00:00.000Z (CERT_HAS_EXPIRED)"],
    ["CERT_NOT_YET_VALID", "not_yet_valid", "is not valid before 2020-01-01T00:00:00.000Z"],
    ["ERR_TLS_CERT_ALTNAME_INVALID", "wrong_host", "is not for localhost: it names IP Address:127.0.0.1"],
    ["ERR_SSL_WRONG_VERSION_NUMBER", "not_tls", "does not speak TLS (ERR_SSL_WRONG_VERSION_NUMBER): use http://"],
  ])("%s → %s", (code, kind, says) => {
    const fault = tlsFault(wrapped(code), { ...context, certificate });
    expect(fault?.kind).toBe(kind);
    expect(fault!.message).toContain(says);
  });

  it("names the certificate when it could be read, and still says what is wrong when not", () => {
    expect(tlsFault(wrapped("CERT_HAS_EXPIRED"), { ...context, certificate })!.message).toBe(
      "the coordinator's certificate (CN=127.0.0.1, issued by CN=Iris Test CA) expired on 2020-01-02T00:00:00.000Z " +
        "(CERT_HAS_EXPIRED): the coordinator's operator must renew it",
    );
    expect(tlsFault(wrapped("CERT_HAS_EXPIRED"), context)!.message).toBe(
      "the coordinator's certificate expired (CERT_HAS_EXPIRED): the coordinator's operator must renew it",
    );
  });

  it("plaintext to the TLS port: the coordinator's answer, with the URL's scheme", () => {
    const answer = new ConnectError(`${TLS_PORT_MESSAGE}127.0.0.1:8443`, Code.FailedPrecondition);
    expect(tlsFault(answer, { ...context, url: "http://127.0.0.1:8443" })).toEqual({
      kind: "tls_port",
      code: "TLS_PORT",
      message: "the coordinator speaks TLS: use https://127.0.0.1:8443 (the URL says http://)",
    });
  });

  it.each([
    ["connection refused", Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })],
    ["a coordinator's refusal", new ConnectError("unknown account key", Code.Unauthenticated)],
    ["not an error", "boom"],
  ])("%s is no TLS fault", (_, err) => expect(tlsFault(err, context)).toBeUndefined());
});
