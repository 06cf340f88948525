// The coordinator's account settings from the environment: sign-in tokens, admins, and how many requests each
// kind of caller may make.
import type { EnvReader } from "../../common/env.ts";

export interface AccountSettings {
  jwtSecret?: string;
  /** Lowercased emails whose users get role admin at register, login and refresh (the only way to be admin). */
  adminEmails: string[];
  /**
   * Chat messages per rolling 24 h: per client address, per account key, per signed-in user (JWT); unlimitedAccountKeys
   * (16 digits) are exempt.
   */
  rateLimits: { anonymousPerDay: number; accountKeyPerDay: number; userPerDay: number; unlimitedAccountKeys: string[] };
  /** AccountService.GenerateKey / VerifyKey calls per client address per rolling hour (0 switches the method off). */
  keyRateLimits: { generateKeyPerHour: number; verifyKeyPerHour: number };
}

const accountKeyPattern = /^\d{4} ?\d{4} ?\d{4} ?\d{4}$/;
// The HTML5 rule protovalidate's `email: true` applies to RegisterRequest.email, so every listed admin can register.
const emailPattern = new RegExp(
  "^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?" +
    "(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$",
);

export function readAccountSettings(r: EnvReader): AccountSettings {
  const jwtSecret = r.string("JWT_SECRET");
  if (jwtSecret !== undefined && jwtSecret.length < 32) r.problem("JWT_SECRET must be at least 32 characters long");
  const adminEmails = r.list("ADMIN_EMAILS");
  const badEmails = adminEmails.filter((email) => !emailPattern.test(email));
  if (badEmails.length > 0) {
    r.problem(`ADMIN_EMAILS must be a comma-separated list of email addresses (not: ${JSON.stringify(badEmails)})`);
  }
  const unlimited = r.list("UNLIMITED_ACCOUNT_KEYS");
  if (unlimited.some((key) => !accountKeyPattern.test(key))) {
    r.problem("UNLIMITED_ACCOUNT_KEYS must be a comma-separated list of 16-digit account keys");
  }
  return {
    jwtSecret,
    adminEmails: [...new Set(adminEmails.map((email) => email.toLowerCase()))],
    rateLimits: {
      anonymousPerDay: r.int("RATE_LIMIT_ANONYMOUS_PER_DAY", 1, 0, 1_000_000),
      accountKeyPerDay: r.int("RATE_LIMIT_ACCOUNT_KEY_PER_DAY", 3, 0, 1_000_000),
      userPerDay: r.int("RATE_LIMIT_USER_PER_DAY", 100, 0, 1_000_000),
      unlimitedAccountKeys: unlimited.map((key) => key.replaceAll(" ", "")),
    },
    keyRateLimits: {
      generateKeyPerHour: r.int("RATE_LIMIT_GENERATE_KEY_PER_HOUR", 10, 0, 1_000_000),
      verifyKeyPerHour: r.int("RATE_LIMIT_VERIFY_KEY_PER_HOUR", 60, 0, 1_000_000),
    },
  };
}
