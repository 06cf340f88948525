// The aggregator's ordered release: the head part streams live, the others are held and released in plan order.
import { describe, expect, it } from "vitest";
import { OrderedRelease } from "./aggregator.ts";

describe("OrderedRelease", () => {
  const heading = (i: number) => `#${i + 1}`;

  it("streams the head live and releases later parts in order as soon as the ones before them are done", () => {
    const release = new OrderedRelease(3, heading);
    const out: string[] = [];
    out.push(...release.start());
    out.push(...release.token(2, "c1")); // the last part runs ahead: held
    out.push(...release.token(0, "a1")); // the head: live
    out.push(...release.complete(2)); // done, but not its turn
    out.push(...release.token(1, "b1"));
    out.push(...release.token(0, "a2"));
    expect(out).toEqual(["#1\n\n", "a1", "a2"]);
    out.push(...release.complete(0)); // part 2 becomes the head: its heading and what it held
    expect(release.head).toBe(1);
    out.push(...release.token(1, "b2")); // now live
    out.push(...release.complete(1)); // part 3 was already complete: released whole
    expect(out.join("|")).toBe("#1\n\n|a1|a2|\n\n#2\n\n|b1|b2|\n\n#3\n\n|c1");
    expect(release.finished).toBe(true);
  });

  it("adds nothing around a request that was not split", () => {
    const release = new OrderedRelease(1);
    expect([...release.start(), ...release.token(0, "x"), ...release.complete(0)]).toEqual(["x"]);
    expect(release.finished).toBe(true);
  });

  it("releases every held part when they complete in reverse order", () => {
    const release = new OrderedRelease(3, heading);
    const out = [
      ...release.start(),
      ...release.token(1, "b"),
      ...release.token(2, "c"),
      ...release.complete(2),
      ...release.complete(1),
    ];
    expect(out).toEqual(["#1\n\n"]);
    expect(release.complete(0).join("")).toBe("\n\n#2\n\nb\n\n#3\n\nc");
  });
});
