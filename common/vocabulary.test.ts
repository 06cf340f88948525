// Every word maps to its protobuf enum and back; UNSPECIFIED and unknown numbers map to nothing.
import { describe, expect, it } from "vitest";
import { Difficulty as DifficultyProto, Role, Tier } from "../gen/iris/v1/common_pb.ts";
import {
  CHAT_ROLES,
  chatRoleFromProto,
  chatRoleToProto,
  DIFFICULTIES,
  difficultyFromProto,
  difficultyRank,
  difficultyToProto,
  NODE_TIERS,
  tierFromProto,
  tierToProto,
} from "./vocabulary.ts";

describe("vocabulary", () => {
  it("round-trips every difficulty, tier and chat role through its enum", () => {
    for (const d of DIFFICULTIES) expect(difficultyFromProto(difficultyToProto[d])).toBe(d);
    for (const t of NODE_TIERS) expect(tierFromProto(tierToProto[t])).toBe(t);
    for (const r of CHAT_ROLES) expect(chatRoleFromProto(chatRoleToProto[r])).toBe(r);
  });

  it("maps UNSPECIFIED and unknown enum numbers to undefined", () => {
    expect(difficultyFromProto(DifficultyProto.UNSPECIFIED)).toBeUndefined();
    expect(tierFromProto(Tier.UNSPECIFIED)).toBeUndefined();
    expect(chatRoleFromProto(Role.UNSPECIFIED)).toBeUndefined();
    expect(chatRoleFromProto(99 as Role)).toBeUndefined();
  });

  it("ranks difficulties SIMPLE < COMPLEX < ADVANCED", () => {
    expect(DIFFICULTIES.map(difficultyRank)).toEqual([0, 1, 2]);
  });
});
