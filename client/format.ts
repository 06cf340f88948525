// Words and numbers for the CLI's human output: enum names, sizes, durations, ages, masked account keys.
import { Difficulty, DivisionMode, Tier } from "../gen/iris/v1/common_pb.ts";
import { TaskStatus } from "../gen/iris/v1/network_pb.ts";

// protobuf-es enums are TypeScript numeric enums, so the reverse mapping gives the short name ("MID")
export const tierName = (tier: Tier): string => (tier ? (Tier[tier] ?? String(tier)) : "-");
export const difficultyName = (d: Difficulty): string => (d ? (Difficulty[d] ?? String(d)) : "-");
export const divisionName = (m: DivisionMode): string => (m ? (DivisionMode[m] ?? String(m)) : "-");
export const statusName = (s: TaskStatus): string => (s ? (TaskStatus[s] ?? String(s)) : "-");

/**
 * 8_000_000_000 → "8B", 1_500_000_000 → "1.5B", 350_000_000 → "350M", 139_840 → "140K"; 0 (unknown) → "-".
 * Always with a unit, so that a tiny model's count never reads as a bigger number than a 70B one beside it.
 */
export function formatParameters(count: bigint | number): string {
  const n = Number(count);
  if (n <= 0) return "-";
  for (const [unit, size] of [
    ["B", 1e9],
    ["M", 1e6],
    ["K", 1e3],
  ] as const) {
    // three significant digits at most: 139.84K is 140K, 7.24B is 7.2B
    if (n >= size) return `${trim(n / size >= 100 ? Math.round(n / size) : n / size)}${unit}`;
  }
  return String(n);
}

const trim = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1).replace(/\.0$/, ""));

/** One decimal for speeds and scores: 42.25 → "42.3", 110 → "110". */
export const formatDecimal = (n: number): string => trim(Math.round(n * 10) / 10);

/** 850 → "850 ms", 1500 → "1.5 s", 0 → "-". */
export function formatMs(ms: number): string {
  if (ms <= 0) return "-";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${trim(Math.round(ms / 100) / 10)} s`;
}

/** How long ago a Unix-ms moment was: "4 s ago", "12 min ago", "3 h ago", "2 d ago"; 0 → "-". */
export function formatAgo(atUnixMs: bigint | number, now: number): string {
  const at = Number(atUnixMs);
  if (at <= 0) return "-";
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** Only the last four digits of a key are ever shown after it was generated: "**** **** **** 3456". */
export function maskAccountKey(key: string): string {
  const digits = key.replace(/\D/g, "");
  return `**** **** **** ${digits.slice(-4).padStart(4, "*")}`;
}
