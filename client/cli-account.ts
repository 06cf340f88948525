// `iris account generate|verify`, `iris node move`, `iris register|login|logout`: keys and the saved login (never
// printed back).
import { credentialsPath, removeCredentials, saveCredentials } from "./credentials.ts";
import { EXIT_FAILURE, EXIT_OK, UsageError } from "./failure.ts";
import { maskAccountKey } from "./format.ts";
import { readFirstLine, readSecret } from "./prompt.ts";
import type { AuthToken, IrisClient } from "./sdk.ts";

export interface AccountIo {
  json: boolean;
  url: string;
  env: Record<string, string | undefined>;
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

const accountKeyPattern = /^\d{4} ?\d{4} ?\d{4} ?\d{4}$/;

export async function generateKey(client: IrisClient, io: AccountIo): Promise<number> {
  const accountKey = await client.generateKey();
  if (io.json) {
    io.stdout.write(`${JSON.stringify({ accountKey })}\n`);
  } else {
    // the only time the whole key is ever shown: it goes to stdout so it can be captured
    io.stdout.write(`${accountKey}\n`);
    io.stderr.write("Keep this key: it is shown once and cannot be recovered. Nodes use it as IRIS_ACCOUNT_KEY.\n");
  }
  return EXIT_OK;
}

export async function verifyKey(client: IrisClient, io: AccountIo, key: string | undefined): Promise<number> {
  if (!key) throw new UsageError("give an account key to verify (or set IRIS_ACCOUNT_KEY)");
  if (!accountKeyPattern.test(key.trim()))
    throw new UsageError("an account key is 16 digits, e.g. 1234 5678 9012 3456");
  const valid = await client.verifyKey(key.trim());
  if (io.json) io.stdout.write(`${JSON.stringify({ valid })}\n`);
  else io.stdout.write(`${maskAccountKey(key)} ${valid ? "is a valid account key" : "is not a known account key"}\n`);
  // a failing exit for "not valid" lets scripts write `if iris account verify "$KEY"; then ...`
  return valid ? EXIT_OK : EXIT_FAILURE;
}

export async function moveNode(
  client: IrisClient,
  io: AccountIo,
  nodeId: string,
  publicKey: string,
  key: string | undefined,
): Promise<number> {
  if (!key)
    throw new UsageError("the node's account key proves it is yours: give --account-key or set IRIS_ACCOUNT_KEY");
  if (!/^[A-Za-z0-9+/]{43}=$/.test(publicKey.trim()))
    throw new UsageError("--public-key: 32 bytes in base64, as the refused agent printed it");
  const disconnected = await client.moveNode(nodeId, publicKey, key.trim());
  if (io.json) io.stdout.write(`${JSON.stringify({ nodeId, moved: true, disconnected })}\n`);
  else
    io.stdout.write(
      `node ${nodeId} now registers with the new ` +
        `key${disconnected ? "; its connection with the old key was ended" : ""}\n`,
    );
  return EXIT_OK;
}

/** IRIS_PASSWORD, else a prompt without echo on a TTY (twice when it is new), else the first line of stdin. */
async function password(io: AccountIo, confirm: boolean): Promise<string> {
  if (io.env.IRIS_PASSWORD) return io.env.IRIS_PASSWORD;
  if (!io.stdin.isTTY) {
    const piped = await readFirstLine(io.stdin);
    if (!piped) throw new UsageError("no password: type it on a terminal, pipe it on stdin or set IRIS_PASSWORD");
    return piped;
  }
  const first = await readSecret("Password: ", io.stdin, io.stderr);
  if (confirm && (await readSecret("Password (again): ", io.stdin, io.stderr)) !== first) {
    throw new UsageError("the passwords differ");
  }
  if (!first) throw new UsageError("no password given");
  return first;
}

async function signedIn(token: AuthToken, email: string, verb: string, io: AccountIo): Promise<number> {
  const expiresAt = new Date(Number(token.expiresAtUnixMs)).toISOString();
  const path = await saveCredentials({ url: io.url, token: token.accessToken, expiresAt }, io.env);
  if (io.json) {
    io.stdout.write(
      `${JSON.stringify({ email, userId: token.userId, role: token.role, expiresAt, credentialsPath: path })}\n`,
    );
  } else {
    io.stdout.write(`${verb} as ${email} (${token.role}) on ${io.url}; login saved to ${path} until ${expiresAt}\n`);
  }
  return EXIT_OK;
}

export async function register(client: IrisClient, io: AccountIo, email: string): Promise<number> {
  const token = await client.register(email, await password(io, true));
  return signedIn(token, email, "registered and signed in", io);
}

export async function login(client: IrisClient, io: AccountIo, email: string): Promise<number> {
  const token = await client.login(email, await password(io, false));
  return signedIn(token, email, "signed in", io);
}

export async function logout(io: AccountIo): Promise<number> {
  const existed = await removeCredentials(io.env);
  if (io.json) io.stdout.write(`${JSON.stringify({ removed: existed })}\n`);
  else
    io.stdout.write(existed ? `removed the saved login (${credentialsPath(io.env)})\n` : "there was no saved login\n");
  return EXIT_OK;
}
