// Reads configuration from environment variables, for the coordinator's and the agent's config alike: every reader
// names its variable in the problem it records, and the problems are collected so that one start shows them all.

export type Env = Record<string, string | undefined>;

export class EnvReader {
  /** One line per wrong variable, in the order read: `PORT must be a whole number from 0 to 65535 (got "abc")`. */
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  /** Records a problem a single reader cannot see: two variables that must agree, a pattern, a file. */
  problem(message: string): void {
    this.problems.push(message);
  }

  /** The trimmed value; unset and blank are the same (compose files and shells leave `NAME=` behind). */
  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === "" ? undefined : value;
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    return this.raw(name) ?? fallback;
  }

  /** A whole number from min to max. */
  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      this.problems.push(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
      return fallback;
    }
    return n;
  }

  /** A decimal number from min to max (fractions, thresholds). */
  number(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^-?(\d+\.?\d*|\.\d+)$/.test(value) || n < min || n > max) {
      this.problems.push(`${name} must be a number from ${min} to ${max} (got ${JSON.stringify(value)})`);
      return fallback;
    }
    return n;
  }

  /** true/false, 1/0, yes/no or on/off, in any case. */
  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(value)) return true;
    if (["0", "false", "no", "off"].includes(value)) return false;
    this.problems.push(`${name} must be true or false (got ${JSON.stringify(value)})`);
    return fallback;
  }

  /** One of `allowed`, matched in any case (LOG_LEVEL=Debug is debug). */
  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const found = allowed.find((option) => option.toLowerCase() === value.toLowerCase());
    if (found === undefined)
      this.problems.push(`${name} must be one of ${allowed.join(", ")} (got ${JSON.stringify(value)})`);
    return found ?? fallback;
  }

  /** A URL with one of `protocols` ("https:"); a wrong one is never echoed, since URLs may hold a password. */
  url(name: string, protocols: readonly string[]): string | undefined;
  url(name: string, protocols: readonly string[], fallback: string): string;
  url(name: string, protocols: readonly string[], fallback?: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      this.problems.push(`${name} is not a valid URL`);
      return fallback;
    }
    if (!protocols.includes(parsed.protocol)) {
      this.problems.push(`${name} must start with ${protocols.map((p) => `${p}//`).join(" or ")}`);
      return fallback;
    }
    return value;
  }

  /** Comma-separated items, trimmed, empty ones dropped; [] when unset. */
  list(name: string): string[] {
    return (this.raw(name) ?? "")
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");
  }
}
