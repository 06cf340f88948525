// ReplayGuard: chunks once and in order, results once with the right chunk count, other kinds once each.
import { describe, expect, it } from "vitest";
import { ReplayGuard } from "./replay-guard.ts";

describe("ReplayGuard", () => {
  it("accepts chunks in order, then the result claiming their count", () => {
    const guard = new ReplayGuard();
    for (const sequence of [0, 1, 2]) expect(guard.accept("chunk", sequence)).toEqual({ ok: true });
    expect(guard.nextChunk).toBe(3);
    expect(guard.accept("result", 3)).toEqual({ ok: true });
  });

  it("rejects a duplicate chunk and is unchanged by it", () => {
    const guard = new ReplayGuard();
    guard.accept("chunk", 0);
    guard.accept("chunk", 1);
    expect(guard.accept("chunk", 1)).toEqual({ ok: false, reason: "duplicate chunk 1 (expected 2)" });
    expect(guard.accept("chunk", 0)).toMatchObject({ ok: false });
    expect(guard.accept("chunk", 2)).toEqual({ ok: true });
  });

  it("rejects a gap and still waits for the missing chunk", () => {
    const guard = new ReplayGuard();
    expect(guard.accept("chunk", 1)).toEqual({ ok: false, reason: "gap: chunk 1 arrived, expected 0" });
    expect(guard.accept("chunk", 0)).toEqual({ ok: true });
  });

  it("rejects a result whose chunk count disagrees, a second result and chunks after the result", () => {
    const guard = new ReplayGuard();
    guard.accept("chunk", 0);
    expect(guard.accept("result", 2)).toEqual({ ok: false, reason: "result claims 2 chunks but 1 arrived" });
    expect(guard.accept("result", 1)).toEqual({ ok: true });
    expect(guard.accept("result", 1)).toEqual({ ok: false, reason: "duplicate result" });
    expect(guard.accept("chunk", 1)).toEqual({ ok: false, reason: "chunk 1 arrived after the result" });
  });

  it("accepts a non-streamed result with no chunks", () => {
    expect(new ReplayGuard().accept("result", 0)).toEqual({ ok: true });
  });

  it("accepts each assign or classify once", () => {
    const guard = new ReplayGuard();
    expect(guard.accept("assign", 0)).toEqual({ ok: true });
    expect(guard.accept("assign", 0)).toEqual({ ok: false, reason: "duplicate assign 0" });
    expect(guard.accept("classify", 0)).toEqual({ ok: true });
  });
});
