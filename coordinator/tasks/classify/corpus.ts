// Reads the difficulty corpus (coordinator/tasks/classify/corpus/): the frozen test split and the training
// prompts. The format, one prompt a line: "<S|C|A> <kind>: <prompt>", where "\n" is a line break and
// "[[user]]" / "[[assistant]]" / "[[system]]" start the turns of a conversation.
import { readdirSync, readFileSync } from "node:fs";
import type { Difficulty } from "../../../common/vocabulary.ts";

export interface CorpusMessage {
  role: string;
  content: string;
}

export interface CorpusItem {
  /** "<file>:<line>", stable while the file is only appended to. */
  id: string;
  lang: string;
  label: Difficulty;
  /** What the prompt asks for (translation, bug, decision, …): for reports, not for training. */
  kind: string;
  /** The prompt as written; training frames still hold their {placeholders}. */
  text: string;
}

export const CORPUS_DIR = new URL("./corpus/", import.meta.url);
export const TEST_SPLIT_FILE = new URL("./corpus/test-split.txt", import.meta.url);
export const DEV_SPLIT_FILE = new URL("./corpus/dev-split.txt", import.meta.url);
export const LANGUAGES = [
  "en",
  "de",
  "fr",
  "es",
  "it",
  "pt",
  "ru",
  "zh",
  "ja",
  "ar",
  "hi",
  "tr",
  "pl",
  "nl",
  "ko",
] as const;

const LABELS: Record<string, Difficulty> = { S: "SIMPLE", C: "COMPLEX", A: "ADVANCED" };
const line = /^([SCA]) ([a-z][a-z-]*): (.+)$/;

/** Parses one corpus file; `lang` is the file's language, or undefined where "# xx" headers set it. */
export function parseCorpus(source: string, name: string, lang?: string): CorpusItem[] {
  const items: CorpusItem[] = [];
  let current = lang;
  for (const [index, raw] of source.split("\n").entries()) {
    const text = raw.trimEnd();
    if (text === "") continue;
    const header = /^# ([a-z]{2})$/.exec(text);
    if (header) {
      current = header[1];
      continue;
    }
    if (text.startsWith("#")) continue;
    const match = line.exec(text);
    if (!match) throw new Error(`${name}:${index + 1}: not "<S|C|A> <kind>: <prompt>"`);
    if (!current) throw new Error(`${name}:${index + 1}: no language ("# xx") before the first prompt`);
    items.push({
      id: `${name}:${index + 1}`,
      lang: current,
      label: LABELS[match[1]!]!,
      kind: match[2]!,
      text: match[3]!.replaceAll("\\n", "\n"),
    });
  }
  return items;
}

/** The prompt as a conversation: one user turn, or the turns its [[role]] markers start. */
export function toMessages(text: string): CorpusMessage[] {
  if (!text.startsWith("[[")) return [{ role: "user", content: text }];
  const messages: CorpusMessage[] = [];
  for (const part of text.split(/(?=\[\[(?:user|assistant|system)\]\])/)) {
    const match = /^\[\[(user|assistant|system)\]\]([\s\S]*)$/.exec(part);
    if (!match) throw new Error(`a turn must start with [[user]], [[assistant]] or [[system]]: ${part.slice(0, 40)}`);
    messages.push({ role: match[1]!, content: match[2]!.trim() });
  }
  return messages;
}

/** The frozen test split: never trained on, never tuned on. */
export function loadTestSplit(): CorpusItem[] {
  return parseCorpus(readFileSync(TEST_SPLIT_FILE, "utf8"), "test-split.txt");
}

/** The calibration split: never trained on; the cost-aware offsets are chosen on it. */
export function loadDevSplit(): CorpusItem[] {
  return parseCorpus(readFileSync(DEV_SPLIT_FILE, "utf8"), "dev-split.txt");
}

/** Every training file (train/<lang>.txt), languages in a fixed order so that training is reproducible. */
export function loadTrainingSeeds(dir: URL = new URL("train/", CORPUS_DIR)): CorpusItem[] {
  const files = readdirSync(dir)
    .filter((f) => /^[a-z]{2}\.txt$/.test(f))
    .sort();
  return files.flatMap((file) =>
    parseCorpus(readFileSync(new URL(file, dir), "utf8"), `train/${file}`, file.slice(0, 2)),
  );
}

/** Material the training frames are filled with: code, one-line bug reports, passages, polite filler. */
export interface Material {
  code: string[];
  /** Log excerpts: machine logs, stack traces, logbooks. */
  logs: string[];
  bugs: string[];
  /** Passages by language. */
  texts: Map<string, string[]>;
  /** Openings and closings by language that change nothing about the task. */
  prefixes: Map<string, string[]>;
  suffixes: Map<string, string[]>;
  /** Personal preambles by language ("I'm on the train and …"). */
  stories: Map<string, string[]>;
}

/**
 * material/code.txt and material/logs.txt: pieces separated by lines "---"; material/bugs.txt: one report a line;
 * material/texts.txt
 * and material/stories.txt: "<lang>: <text>" a line; material/fillers.txt: "<lang> <: <opening>" or "<lang> >:
 * <closing>".
 */
export function loadMaterial(dir: URL = new URL("material/", CORPUS_DIR)): Material {
  const read = (file: string) => readFileSync(new URL(file, dir), "utf8");
  const lines = (file: string) =>
    read(file)
      .split("\n")
      .map((l) => l.trimEnd())
      .filter((l) => l !== "" && !l.startsWith("#"));
  const blocks = (file: string) =>
    read(file)
      .split(/^---$/m)
      .map((block) => block.replace(/^#.*\n/gm, "").trim())
      .filter((block) => block !== "");
  const bugs = lines("bugs.txt").map((l) => l.replaceAll("\\n", "\n"));
  const byLanguage = (file: string) => {
    const map = new Map<string, string[]>();
    for (const l of lines(file)) {
      const match = /^([a-z]{2}): (.+)$/.exec(l);
      if (!match) throw new Error(`material/${file}: not "<lang>: <text>": ${l.slice(0, 40)}`);
      push(map, match[1]!, match[2]!.replaceAll("\\n", "\n"));
    }
    return map;
  };
  const prefixes = new Map<string, string[]>();
  const suffixes = new Map<string, string[]>();
  for (const l of lines("fillers.txt")) {
    const match = /^([a-z]{2}) ([<>]): (.+)$/.exec(l);
    if (!match) throw new Error(`material/fillers.txt: not "<lang> <|>: <text>": ${l.slice(0, 40)}`);
    push(match[2] === "<" ? prefixes : suffixes, match[1]!, match[3]!);
  }
  return {
    code: blocks("code.txt"),
    logs: blocks("logs.txt"),
    bugs,
    texts: byLanguage("texts.txt"),
    prefixes,
    suffixes,
    stories: byLanguage("stories.txt"),
  };
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
