// The product's words, defined once: difficulty, node tier, chat role, user role, division mode, and the maps
// between them and their protobuf enums. The database's CHECK constraints use the same lists in the same order.
import { Difficulty as DifficultyProto, Role, Tier } from "../gen/iris/v1/common_pb.ts";

export const DIFFICULTIES = ["SIMPLE", "COMPLEX", "ADVANCED"] as const;
export type Difficulty = (typeof DIFFICULTIES)[number];

export const NODE_TIERS = ["BASIC", "MID", "PRO"] as const;
export type NodeTier = (typeof NODE_TIERS)[number];

export const CHAT_ROLES = ["system", "user", "assistant"] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export const USER_ROLES = ["user", "admin"] as const;
export type UserRole = (typeof USER_ROLES)[number];

export const DIVISION_MODES = ["single", "subtasks", "consensus", "context"] as const;
export type DivisionMode = (typeof DIVISION_MODES)[number];

/** SIMPLE 0, COMPLEX 1, ADVANCED 2: the order the router and the hint rules compare by. */
export function difficultyRank(difficulty: Difficulty): number {
  return DIFFICULTIES.indexOf(difficulty);
}

export const difficultyToProto: Readonly<Record<Difficulty, DifficultyProto>> = {
  SIMPLE: DifficultyProto.SIMPLE,
  COMPLEX: DifficultyProto.COMPLEX,
  ADVANCED: DifficultyProto.ADVANCED,
};

const difficultyNames = inverse(difficultyToProto);

/** undefined for DIFFICULTY_UNSPECIFIED and values this build does not know. */
export function difficultyFromProto(value: DifficultyProto): Difficulty | undefined {
  return difficultyNames.get(value);
}

export const tierToProto: Readonly<Record<NodeTier, Tier>> = { BASIC: Tier.BASIC, MID: Tier.MID, PRO: Tier.PRO };

const tierNames = inverse(tierToProto);

/** undefined for TIER_UNSPECIFIED and values this build does not know. */
export function tierFromProto(value: Tier): NodeTier | undefined {
  return tierNames.get(value);
}

export const chatRoleToProto: Readonly<Record<ChatRole, Role>> = {
  system: Role.SYSTEM,
  user: Role.USER,
  assistant: Role.ASSISTANT,
};

const chatRoleNames = inverse(chatRoleToProto);

/** undefined for ROLE_UNSPECIFIED and values this build does not know. */
export function chatRoleFromProto(value: Role): ChatRole | undefined {
  return chatRoleNames.get(value);
}

function inverse<K extends string, V extends number>(map: Readonly<Record<K, V>>): ReadonlyMap<V, K> {
  return new Map(Object.entries<V>(map).map(([name, value]) => [value, name as K]));
}
