// Turns the hand-written training prompts into the training set: each prompt as written, once with polite filler
// around it, once with typos and chat-box casing, a third of them after a personal preamble; each frame
// ("Fix this: {code}", "{doc} Summarise it.") filled with several pieces of material. Deterministic: the same
// corpus and seed give the same set in the same order.
import type { Difficulty } from "../../../common/vocabulary.ts";
import { seededRandom } from "../../../common/seeded-random.ts";
import { toMessages, type CorpusItem, type CorpusMessage, type Material } from "./corpus.ts";
import { textWeight } from "./characters.ts";

export interface TrainingItem {
  /** Items made from one written prompt or frame share a group: cross-validation never splits a group. */
  group: string;
  lang: string;
  label: Difficulty;
  kind: string;
  messages: CorpusMessage[];
}

/** How many fillings of each frame. */
const FRAME_FILLINGS = 4;
/** A {doc} is at least this heavy (textWeight): past the 2,000 characters a small model's context holds. */
const DOC_WEIGHT = 2_600;
/** How many written prompts also get a personal preamble: of every class alike, so it moves none of them. */
const STORY_SHARE = 0.35;
const placeholder = /\{(code|bug|text|doc|log|logs)\}/g;

export function expandCorpus(seeds: readonly CorpusItem[], material: Material, seed = 1): TrainingItem[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const items: TrainingItem[] = [];
  const add = (from: CorpusItem, text: string) =>
    items.push({ group: from.id, lang: from.lang, label: from.label, kind: from.kind, messages: toMessages(text) });

  const passage = (lang: string): string => {
    const own = material.texts.get(lang);
    if (own && random() < 0.7) return pick(own);
    return pick([...material.texts.values()].flat());
  };
  const document = (lang: string): string => {
    const parts: string[] = [];
    while (textWeight(parts.join("\n\n")) < DOC_WEIGHT) parts.push(passage(lang));
    return parts.join("\n\n");
  };
  const longLog = (): string => {
    const parts: string[] = [];
    while (textWeight(parts.join("\n")) < DOC_WEIGHT) parts.push(pick(material.logs));
    return parts.join("\n");
  };
  const withFiller = (lang: string, text: string): string => {
    const prefixes = material.prefixes.get(lang) ?? [];
    const suffixes = material.suffixes.get(lang) ?? [];
    const before = prefixes.length > 0 && random() < 0.6;
    const after = suffixes.length > 0 && (!before || random() < 0.4);
    return `${before ? `${pick(prefixes)} ` : ""}${text}${after ? ` ${pick(suffixes)}` : ""}`;
  };

  for (const item of seeds) {
    if (item.text.startsWith("[[")) {
      add(item, item.text);
      continue;
    }
    if (/\{(?:code|bug|text|doc|log|logs)\}/.test(item.text)) {
      for (let i = 0; i < FRAME_FILLINGS; i++) {
        const filled = item.text.replace(placeholder, (_, name: string) => {
          if (name === "code") return pick(material.code);
          if (name === "bug") return pick(material.bugs);
          if (name === "text") return passage(item.lang);
          if (name === "log") return pick(material.logs);
          if (name === "logs") return longLog();
          return document(item.lang);
        });
        add(item, random() < 0.5 ? withFiller(item.lang, filled) : filled);
      }
      continue;
    }
    add(item, item.text);
    add(item, withFiller(item.lang, item.text));
    add(item, chatBoxStyle(item.text, random));
    const stories = material.stories.get(item.lang);
    if (stories && random() < STORY_SHARE) {
      // one or two sentences of it: preambles run from a clause to a paragraph
      const story = random() < 0.5 ? pick(stories) : `${pick(stories)} ${pick(stories)}`;
      add(item, `${story} ${item.text}`);
    }
  }
  return items;
}

/** Typos in one or two longer words; often all lower case and no final punctuation, as typed in a chat box. */
export function chatBoxStyle(text: string, random: () => number): string {
  const words = text.split(" ");
  const candidates = words.flatMap((word, index) => (/^\p{L}{4,}$/u.test(word) ? [index] : []));
  const typos = Math.min(candidates.length, 1 + Math.floor(random() * 2));
  for (let t = 0; t < typos; t++) {
    const index = candidates[Math.floor(random() * candidates.length)]!;
    const word = [...words[index]!];
    const at = 1 + Math.floor(random() * (word.length - 2));
    const kind = Math.floor(random() * 3);
    if (kind === 0) [word[at], word[at + 1]] = [word[at + 1]!, word[at]!];
    else if (kind === 1) word.splice(at, 1);
    else word.splice(at, 0, word[at]!);
    words[index] = word.join("");
  }
  let result = words.join(" ");
  if (random() < 0.5) result = result.toLowerCase();
  if (random() < 0.5) result = result.replace(/[.?!。？！؟]+$/u, "");
  return result;
}
