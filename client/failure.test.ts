// The CLI's failure messages and exit codes, and the saved login's rules (which coordinator, until when).
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { configDir, loadCredentials, removeCredentials, saveCredentials, tokenFor } from "./credentials.ts";
import { describeFailure, exitCodeFor, UsageError } from "./failure.ts";

const context = { url: "http://127.0.0.1:8080", sentSavedToken: false };

describe("describeFailure", () => {
  it.each([
    [
      new ConnectError("no node that serves SIMPLE requests is online; waited 30 s", Code.Unavailable),
      "no node can answer right now: no node that serves SIMPLE requests is online; waited 30 s",
    ],
    [
      new ConnectError("queue is full", Code.ResourceExhausted),
      "the network is busy or a limit was reached: queue is full",
    ],
    [new ConnectError("node x is not registered", Code.NotFound), "not found: node x is not registered"],
    [new ConnectError("", Code.Internal), "the coordinator failed"],
    [new UsageError("no prompt"), "no prompt"],
    [new Error("boom"), "boom"],
  ])("%s", (err, text) => expect(describeFailure(err, context)).toBe(text));

  it("tells an unreachable coordinator from a network without nodes", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8080"), { code: "ECONNREFUSED" });
    const err = new ConnectError(
      "connect ECONNREFUSED 127.0.0.1:8080",
      Code.Unavailable,
      undefined,
      undefined,
      refused,
    );
    expect(describeFailure(err, context)).toBe(
      "cannot reach the coordinator at http://127.0.0.1:8080: connect ECONNREFUSED 127.0.0.1:8080",
    );
  });

  it("hints at a stale saved login only when one was sent", () => {
    const err = new ConnectError("token expired", Code.Unauthenticated);
    expect(describeFailure(err, context)).toBe("the coordinator refused the credentials: token expired");
    expect(describeFailure(err, { ...context, sentSavedToken: true })).toContain("run `iris login`");
  });

  it("tells certificate and http/https faults in words, with the setting that fixes them", () => {
    const tlsPort = new ConnectError("the coordinator speaks TLS: use https://127.0.0.1:8443", Code.FailedPrecondition);
    expect(describeFailure(tlsPort, { ...context, url: "http://127.0.0.1:8443" })).toBe(
      "the coordinator speaks TLS: use https://127.0.0.1:8443 (the URL says http://)",
    );
    const untrusted = new ConnectError(
      "unable to verify the first certificate",
      Code.Internal,
      undefined,
      undefined,
      Object.assign(new Error("unable to verify the first certificate"), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }),
    );
    expect(describeFailure(untrusted, { ...context, url: "https://iris.test" })).toBe(
      "the coordinator's certificate is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE): set " +
        "--ca or IRIS_CA_PATH to the PEM file of the CA that signed it",
    );
  });

  it("exits 2 for usage, 1 otherwise: 130 is for Ctrl-C alone (the CLI knows when it was pressed)", () => {
    expect(exitCodeFor(new UsageError("x"))).toBe(2);
    expect(exitCodeFor(new ConnectError("x", Code.Canceled))).toBe(1);
    expect(exitCodeFor(new ConnectError("x", Code.Unavailable))).toBe(1);
    expect(exitCodeFor(new Error("x"))).toBe(1);
  });
});

describe("saved login", () => {
  it("lives under XDG_CONFIG_HOME (absolute only), else ~/.config", () => {
    expect(configDir({ XDG_CONFIG_HOME: "/x/config", HOME: "/home/a" })).toBe("/x/config/iris");
    expect(configDir({ XDG_CONFIG_HOME: "relative", HOME: "/home/a" })).toBe("/home/a/.config/iris");
    expect(configDir({ HOME: "/home/a" })).toBe("/home/a/.config/iris");
  });

  it("is sent only to the coordinator that issued it, and only before it expires", () => {
    const saved = { url: "http://a:8080", token: "t", expiresAt: new Date(2_000_000).toISOString() };
    expect(tokenFor(saved, "http://a:8080/", 1_000_000)).toBe("t");
    expect(tokenFor(saved, "http://b:8080", 1_000_000)).toBeUndefined();
    expect(tokenFor(saved, "http://a:8080", 2_000_000)).toBeUndefined();
    expect(tokenFor(undefined, "http://a:8080", 0)).toBeUndefined();
  });

  it("is written with mode 0600 in a 0700 folder, read back, and removed", async () => {
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "iris-credentials-")) };
    const saved = { url: "http://a:8080", token: "t", expiresAt: "2030-01-01T00:00:00.000Z" };
    const path = await saveCredentials(saved, env);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(env.XDG_CONFIG_HOME, "iris")).mode & 0o777).toBe(0o700);
    expect(await loadCredentials(env)).toEqual(saved);
    expect(await removeCredentials(env)).toBe(true);
    expect(await loadCredentials(env)).toBeUndefined();
    expect(await removeCredentials(env)).toBe(false);
  });
});
