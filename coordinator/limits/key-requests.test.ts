// The key-call limiter on an injected clock: the rolling window, the wait, addresses apart, a limit of 0, the memory
// bound.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { KeyRequestLimiter } from "./key-requests.ts";

const HOUR = 3_600_000;

function refusal(call: () => void): ConnectError {
  try {
    call();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected a refusal");
}

describe("KeyRequestLimiter", () => {
  const setup = (generateKeyPerHour = 2, verifyKeyPerHour = 3, maxAddresses?: number) => {
    const clock = { now: 1_000_000 };
    const limiter = new KeyRequestLimiter(
      { generateKeyPerHour, verifyKeyPerHour },
      { now: () => clock.now, maxAddresses },
    );
    return { clock, limiter };
  };

  it("admits the limit within the rolling hour, then refuses with the wait until the oldest call leaves it", () => {
    const { clock, limiter } = setup();
    limiter.admit("GenerateKey", "192.0.2.1");
    clock.now += 10 * 60_000;
    limiter.admit("GenerateKey", "192.0.2.1");
    clock.now += 5 * 60_000;
    const refused = refusal(() => limiter.admit("GenerateKey", "192.0.2.1"));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toBe("rate limit: 2 GenerateKey calls per 1 h from one address; next allowed in 45 min");
    expect(refused.metadata.get("retry-after")).toBe(String(45 * 60));
    // a refused call is not counted: the wait does not move
    clock.now += 45 * 60_000 - 1;
    expect(refusal(() => limiter.admit("GenerateKey", "192.0.2.1")).metadata.get("retry-after")).toBe("1");
    clock.now += 1;
    limiter.admit("GenerateKey", "192.0.2.1");
  });

  it.each([
    ["another address", "192.0.2.2", true],
    ["the same IPv4 as IPv4-mapped IPv6", "::ffff:192.0.2.1", false],
  ])("counts %s apart or together", (_name, other, separate) => {
    const { limiter } = setup(1);
    limiter.admit("GenerateKey", "192.0.2.1");
    if (separate) expect(() => limiter.admit("GenerateKey", other)).not.toThrow();
    else expect(refusal(() => limiter.admit("GenerateKey", other)).code).toBe(Code.ResourceExhausted);
  });

  it("counts an IPv6 host by its /64, and each method on its own", () => {
    const { limiter } = setup(1, 1);
    limiter.admit("GenerateKey", "2001:db8:0:1::1");
    expect(refusal(() => limiter.admit("GenerateKey", "2001:db8:0:1:ffff::2")).code).toBe(Code.ResourceExhausted);
    limiter.admit("GenerateKey", "2001:db8:0:2::1");
    limiter.admit("VerifyKey", "2001:db8:0:1::1");
    expect(refusal(() => limiter.admit("VerifyKey", "2001:db8:0:1::1")).rawMessage).toMatch(
      /^rate limit: 1 VerifyKey call per 1 h/,
    );
  });

  it("switches a method off at 0 with PermissionDenied", () => {
    const { limiter } = setup(0, 5);
    expect(refusal(() => limiter.admit("GenerateKey", "192.0.2.1")).code).toBe(Code.PermissionDenied);
    limiter.admit("VerifyKey", "192.0.2.1");
  });

  it("remembers a bounded number of addresses, forgetting expired ones first", () => {
    const { clock, limiter } = setup(1, 1, 2);
    limiter.admit("GenerateKey", "192.0.2.1");
    clock.now += HOUR;
    limiter.admit("GenerateKey", "192.0.2.2");
    limiter.admit("GenerateKey", "192.0.2.3"); // over the bound: .1 has expired and goes
    expect(refusal(() => limiter.admit("GenerateKey", "192.0.2.2")).code).toBe(Code.ResourceExhausted);
    expect(refusal(() => limiter.admit("GenerateKey", "192.0.2.3")).code).toBe(Code.ResourceExhausted);
    limiter.admit("GenerateKey", "192.0.2.4"); // nothing expired: the longest idle (.2) goes
    limiter.admit("GenerateKey", "192.0.2.2");
  });
});
