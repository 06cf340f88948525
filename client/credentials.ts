// The CLI's saved login: $XDG_CONFIG_HOME/iris/credentials.json (default ~/.config/iris), mode 0600 in a 0700 folder.
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Credentials {
  /** The coordinator that issued the token: it is sent to that coordinator only. */
  url: string;
  token: string;
  /** ISO 8601. */
  expiresAt: string;
}

/** The config folder per the XDG base directory spec; a relative XDG_CONFIG_HOME is invalid there and ignored. */
export function configDir(env: Record<string, string | undefined>): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg?.startsWith("/") ? xdg : join(env.HOME || homedir(), ".config");
  return join(base, "iris");
}

export const credentialsPath = (env: Record<string, string | undefined>): string =>
  join(configDir(env), "credentials.json");

/** Trailing slashes do not make another coordinator. */
const sameCoordinator = (a: string, b: string): boolean => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");

export async function saveCredentials(
  credentials: Credentials,
  env: Record<string, string | undefined>,
): Promise<string> {
  const dir = configDir(env);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // mkdir's mode is masked by the umask and ignored for an existing folder
  const path = credentialsPath(env);
  // written aside and renamed, so a reader never sees half a file and the mode is right from the first byte
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
  return path;
}

/** The saved login, or undefined when there is none or the file is not ours to understand. */
export async function loadCredentials(env: Record<string, string | undefined>): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(credentialsPath(env), "utf8");
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<Credentials>;
    if (typeof value.url === "string" && typeof value.token === "string" && typeof value.expiresAt === "string") {
      return { url: value.url, token: value.token, expiresAt: value.expiresAt };
    }
  } catch {
    // a corrupt file is the same as none: `iris login` writes a new one
  }
  return undefined;
}

/** Removes the saved login; true when there was one. */
export async function removeCredentials(env: Record<string, string | undefined>): Promise<boolean> {
  const path = credentialsPath(env);
  const existed = (await loadCredentials(env)) !== undefined;
  await rm(path, { force: true });
  return existed;
}

/** The token to send to `url` now: only to the coordinator that issued it, and only before it expires. */
export function tokenFor(credentials: Credentials | undefined, url: string, now: number): string | undefined {
  if (!credentials || !sameCoordinator(credentials.url, url)) return undefined;
  return Date.parse(credentials.expiresAt) > now ? credentials.token : undefined;
}
