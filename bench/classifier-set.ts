// Loads bench/classifier-set.json (labelled prompts) into conversations the classifiers take; builds the long
// documents.
import { readFileSync } from "node:fs";
import { DIFFICULTIES, type Difficulty } from "../common/vocabulary.ts";

export type Split = "train" | "test";

export interface LabelledPrompt {
  id: string;
  lang: string;
  kind: string;
  label: Difficulty;
  split: Split;
  messages: { role: string; content: string }[];
}

interface RawItem {
  id: string;
  lang: string;
  kind: string;
  label: string;
  split: string;
  prompt?: string;
  messages?: { role: string; content: string }[];
  document?: { placement: "before" | "after"; repeat: number; paragraphs: string[] };
}

const setPath = new URL("./classifier-set.json", import.meta.url);

/** Every item of the set, in file order; throws on a malformed item so a typo can't silently skew the figures. */
export function loadClassifierSet(path: URL | string = setPath): LabelledPrompt[] {
  const raw = JSON.parse(readFileSync(path, "utf8")) as { items: RawItem[] };
  const seen = new Set<string>();
  return raw.items.map((item) => {
    if (seen.has(item.id)) throw new Error(`classifier set: duplicate id ${item.id}`);
    seen.add(item.id);
    if (!(DIFFICULTIES as readonly string[]).includes(item.label))
      throw new Error(`classifier set: ${item.id} has label ${item.label}`);
    if (item.split !== "train" && item.split !== "test")
      throw new Error(`classifier set: ${item.id} has split ${item.split}`);
    return {
      id: item.id,
      lang: item.lang,
      kind: item.kind,
      label: item.label as Difficulty,
      split: item.split,
      messages: item.messages ?? [{ role: "user", content: userMessage(item) }],
    };
  });
}

function userMessage(item: RawItem): string {
  if (item.prompt === undefined) throw new Error(`classifier set: ${item.id} has neither prompt nor messages`);
  if (!item.document) return item.prompt;
  const { placement, repeat, paragraphs } = item.document;
  // Numbered parts make the repetition read like sections of one document rather than a pasted loop.
  const parts: string[] = [];
  for (let i = 0; i < repeat; i++) parts.push(`Part ${i + 1}\n\n${paragraphs.join("\n\n")}`);
  const document = parts.join("\n\n");
  return placement === "before" ? `${item.prompt}\n\n${document}` : `${document}\n\n${item.prompt}`;
}
