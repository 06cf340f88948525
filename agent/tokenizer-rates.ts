// How many characters one token of the node's model holds, measured on fixed samples with the backend's own
// tokenizer. The coordinator splits long documents (context mode) with these rates instead of its estimate.
import type { TokenizerRates } from "../common/tokenizer-rates.ts";
import type { Backend } from "./backends/backend.ts";

/** English prose and code: what most ASCII documents are made of. */
const ASCII_SAMPLE =
  "The committee met on Tuesday to review the budget for the coming year. After a long discussion, the members " +
  "agreed to raise the maintenance fund by 12 percent and to postpone the new library until the spring. " +
  "function total(items) {\n  return items.reduce((sum, item) => sum + item.price * item.quantity, 0);\n}\n" +
  "Questions about the minutes should be sent to the secretary before the next meeting on 4 March.";

/** Other scripts, with their spaces and punctuation: Chinese, Japanese, Russian, Greek, accented Latin. */
const OTHER_SAMPLE =
  "委员会在星期二开会，审查了来年的预算。经过长时间的讨论，成员们同意将维修基金增加百分之十二。" +
  "会議の議事録についての質問は、次の会議の前に書記に送ってください。" +
  "Комитет собрался во вторник, чтобы рассмотреть бюджет на следующий год. " +
  "Η επιτροπή συνεδρίασε την Τρίτη για να εξετάσει τον προϋπολογισμό. " +
  "Le comité s'est réuni mardi ; après une longue discussion, les membres ont décidé d'agrandir la bibliothèque.";

function countChars(text: string): { ascii: number; other: number } {
  let ascii = 0;
  let other = 0;
  for (const char of text) {
    if (char.charCodeAt(0) < 0x80) ascii++;
    else other++;
  }
  return { ascii, other };
}

/**
 * The rates, or undefined when the backend has no tokenizer or it fails (the coordinator then estimates).
 * The other sample's ASCII characters (spaces, punctuation, Latin letters) are charged at the ASCII rate first.
 */
export async function measureTokenizerRates(backend: Backend): Promise<TokenizerRates | undefined> {
  if (!backend.countTokens) return undefined;
  try {
    const asciiTokens = await backend.countTokens(ASCII_SAMPLE);
    const otherTokens = await backend.countTokens(OTHER_SAMPLE);
    if (asciiTokens <= 0 || otherTokens <= 0) return undefined;
    const asciiCharsPerToken = ASCII_SAMPLE.length / asciiTokens;
    const chars = countChars(OTHER_SAMPLE);
    // at least a tenth of the tokens go to the other characters, so a tokenizer cheap on ASCII can't divide by ~0
    const tokensOfOther = Math.max(otherTokens / 10, otherTokens - chars.ascii / asciiCharsPerToken);
    return { asciiCharsPerToken: clamp(asciiCharsPerToken), otherCharsPerToken: clamp(chars.other / tokensOfOther) };
  } catch {
    return undefined;
  }
}

/** Within what the coordinator accepts (TokenizerRates in proto/iris/v1/node.proto). */
const clamp = (rate: number): number => Math.min(64, Math.max(0.1, rate));
