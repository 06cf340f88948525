// The `iris` command line's options: what each flag takes, checked as commander parses it (a wrong value is a usage
// error that names the flag), and the options the commands receive.
import { InvalidArgumentError } from "commander";
import { DivisionMode } from "../gen/iris/v1/common_pb.ts";
import { CaFileError, readCaFile } from "../common/ca-file.ts";

export const DEFAULT_URL = "http://127.0.0.1:8080";

export interface ChatFlags {
  model?: string;
  maxTokens?: number;
  temperature?: number;
  system?: string;
  quiet?: boolean;
  mode?: DivisionMode;
  nodes?: number;
}

export interface GlobalOptions {
  url: string;
  /** PEM certificates of the CA given by --ca / IRIS_CA_PATH. */
  ca?: string[];
  json?: boolean;
  accountKey?: string;
}

export function parseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`not a URL (e.g. ${DEFAULT_URL})`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new InvalidArgumentError("use an http:// or https:// URL");
  return value.replace(/\/+$/, "");
}

export function parseCaFile(path: string): string[] {
  try {
    return readCaFile(path);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof CaFileError ? err.message : String(err));
  }
}

export function parseAccountKey(value: string): string {
  // the message must not repeat the value: it is a secret even when mistyped
  if (!/^\d{4} ?\d{4} ?\d{4} ?\d{4}$/.test(value.trim()))
    throw new InvalidArgumentError("an account key is 16 digits, e.g. 1234 5678 9012 3456");
  return value.trim();
}

export const wholeNumber =
  (max: number) =>
  (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) > max) throw new InvalidArgumentError(`a whole number from 0 to ${max}`);
    return Number(value);
  };

export function parseTemperature(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 2)
    throw new InvalidArgumentError("a number from 0 to 2");
  return n;
}

export const divisionModes = ["single", "subtasks", "consensus", "context", "auto"] as const;

export function parseDivisionMode(value: string): DivisionMode {
  const name = value.trim().toLowerCase();
  if (!(divisionModes as readonly string[]).includes(name))
    throw new InvalidArgumentError(`one of ${divisionModes.join(", ")}`);
  return DivisionMode[name.toUpperCase() as Uppercase<(typeof divisionModes)[number]>];
}

export function parseConsensusNodes(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 2 || Number(value) > 9)
    throw new InvalidArgumentError("a whole number from 2 to 9");
  return Number(value);
}
