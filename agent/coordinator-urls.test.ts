// COORDINATOR_URL as a list: the coordinators of a cluster, tried in order when one fails.
import { describe, expect, it } from "vitest";
import { AgentConfigError, loadAgentConfig } from "./config.ts";
import { CoordinatorList, coordinatorUrls } from "./coordinator-list.ts";

const base = { IRIS_ACCOUNT_KEY: "1234 5678 9012 3456", NODE_ID: "n1", IRIS_BACKEND: "lmstudio" };

describe("COORDINATOR_URL", () => {
  it("takes one URL or several, comma-separated", () => {
    expect(coordinatorUrls("http://a:8080")).toEqual(["http://a:8080"]);
    expect(coordinatorUrls(" http://a:8080, https://b:8443 ,")).toEqual(["http://a:8080", "https://b:8443"]);
    expect(loadAgentConfig({ ...base, COORDINATOR_URL: "http://a:8080,http://b:8080" }).coordinatorUrl).toBe(
      "http://a:8080,http://b:8080",
    );
  });

  it(
    "moves to the next after a failure: at once within a round, after the backoff when the round ends or a session " +
      "had registered",
    () => {
      const list = new CoordinatorList("http://a,http://b,http://c");
      expect(list.current).toBe("http://a");
      expect(list.advance(false)).toBe("next");
      expect(list.current).toBe("http://b");
      expect(list.advance(false)).toBe("next");
      expect(list.advance(false)).toBe("round"); // a, b and c all failed: back at a, after the backoff
      expect(list.current).toBe("http://a");
      expect(list.advance(true)).toBe("round"); // a's session had registered, then broke: b, after a short backoff
      expect(list.current).toBe("http://b");
      expect(list.advance(false)).toBe("next");
      expect(list.advance(false)).toBe("next");
      expect(list.advance(false)).toBe("round");
      expect(new CoordinatorList("http://only").advance(false)).toBe("round"); // one coordinator: as before
    },
  );

  it("refuses a list with an entry that is no http(s) URL", () => {
    expect(() => loadAgentConfig({ ...base, COORDINATOR_URL: "http://a:8080,b:8080" })).toThrow(AgentConfigError);
    expect(() => loadAgentConfig({ ...base, COORDINATOR_URL: "http://a:8080,,http://b" })).toThrow(
      /several separated by commas/,
    );
  });
});
