// Words and numbers as the pages show them: enum names, durations, speeds, sizes.
import { Difficulty, DivisionMode, Tier } from "../../gen/iris/v1/common_pb.ts";
import { Verification } from "../../gen/iris/v1/network_pb.ts";

export function tierLabel(tier: Tier): string {
  return tier === Tier.UNSPECIFIED ? "—" : Tier[tier];
}

export function difficultyLabel(difficulty: Difficulty): string {
  return difficulty === Difficulty.UNSPECIFIED ? "—" : Difficulty[difficulty];
}

/** "consensus", "subtasks", … as requests name the modes. */
export function divisionLabel(mode: DivisionMode): string {
  return mode === DivisionMode.UNSPECIFIED ? "single" : DivisionMode[mode].toLowerCase();
}

/** "declared", "verified", "contradicted", "inferred" (parsed or measured by the coordinator). */
export function verificationLabel(verification: Verification): string {
  return verification === Verification.UNSPECIFIED ? "declared" : Verification[verification].toLowerCase();
}

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });

export function count(n: number | bigint): string {
  return integer.format(n);
}

export function tokensPerSecond(n: number): string {
  return `${n >= 100 ? integer.format(n) : oneDecimal.format(n)} tok/s`;
}

/** "850 ms", "3.2 s", "4 min 10 s". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${oneDecimal.format(ms / 1000)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** "24 GB" from megabytes; "—" for none (CPU-only nodes). */
export function vram(megabytes: number): string {
  if (megabytes <= 0) return "—";
  return megabytes >= 1024 ? `${oneDecimal.format(megabytes / 1024)} GB` : `${integer.format(megabytes)} MB`;
}

/** "14:03:07" today, else "3 Nov 14:03". */
export function clockTime(unixMs: number, now = Date.now()): string {
  const at = new Date(unixMs);
  const sameDay = new Date(now).toDateString() === at.toDateString();
  return sameDay
    ? at.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : at.toLocaleString("en-GB", { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}
