// Splitting one request into independent parts: the planning prompt a node answers, reading its plan, and
// the rule-based fallback for numbered lists and several questions. Pure functions; subtasks.ts runs them.

/** The most characters one planned part may have (a plan that copies a whole document is no plan). */
const MAX_PART_CHARS = 4_000;
/** Requests longer than this are not split into questions by the rules: documents are full of "?". */
const MAX_QUESTION_SPLIT_CHARS = 2_000;

/** The planning conversation: the node answers with a JSON array of self-contained sub-requests. */
export function planningMessages(request: string, maxParts: number): { role: "system" | "user"; content: string }[] {
  return [
    {
      role: "system",
      content:
        `You split a user's request into independent sub-requests that different assistants can answer in parallel. ` +
        `Answer with a JSON array of 2 to ${maxParts} strings, each a complete, self-contained request (repeat any ` +
        `shared context in each), in the order the answers should appear. If the request cannot be split into ` +
        `independent parts, answer with []. Answer with the JSON array only.`,
    },
    { role: "user", content: request },
  ];
}

/**
 * The parts in a planning answer, or undefined when it holds no usable plan: the first JSON array in the text
 * (code fences and chatter around it are ignored) of 2 or more non-empty strings. A plan with more than
 * `maxParts` parts is folded into `maxParts` (neighbours joined), so no part is lost.
 */
export function parsePlan(answer: string, maxParts: number): string[] | undefined {
  const start = answer.indexOf("[");
  const end = answer.lastIndexOf("]");
  if (start < 0 || end <= start) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.slice(start, end + 1));
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((part) => typeof part === "string")) return undefined;
  const parts = (parsed as string[]).map((part) => part.trim()).filter((part) => part !== "");
  if (parts.length < 2 || parts.some((part) => part.length > MAX_PART_CHARS)) return undefined;
  return fold(parts, maxParts);
}

/** Joins neighbouring parts until there are at most `maxParts`, keeping the order and sizes even. */
export function fold(parts: string[], maxParts: number): string[] {
  if (parts.length <= maxParts) return parts;
  const folded: string[] = [];
  for (let i = 0; i < maxParts; i++) {
    const from = Math.floor((i * parts.length) / maxParts);
    const to = Math.floor(((i + 1) * parts.length) / maxParts);
    folded.push(parts.slice(from, to).join("\n\n"));
  }
  return folded;
}

const numbered = /^[ \t]*(?:\(?(\d{1,2})[.)]|(\d{1,2})\s*[-–:])[ \t]+(\S.*)$/;

/**
 * Parts the rules find: a numbered list (items 1, 2, 3… in order; text before item 1 is an introduction
 * repeated in every part, lines after an item belong to it), one item a line or, in a short request, run on in
 * one line ("1. Define TCP. 2. Define UDP."); else two or more questions in a short request (statements before
 * the first question are repeated in every part). [] when none applies.
 */
export function ruleBasedParts(request: string, maxParts: number): string[] {
  const list = numberedItems(request) ?? inlineItems(request);
  if (list) return fold(list, maxParts);
  const questions = separateQuestions(request);
  return questions ? fold(questions, maxParts) : [];
}

function numberedItems(request: string): string[] | undefined {
  const lines = request.split(/\r?\n/);
  const intro: string[] = [];
  const items: string[][] = [];
  for (const line of lines) {
    const match = numbered.exec(line);
    const number = match ? Number(match[1] ?? match[2]) : undefined;
    if (match && number === items.length + 1) items.push([match[3]!]);
    else if (items.length === 0) intro.push(line);
    else items.at(-1)!.push(line);
  }
  if (items.length < 2) return undefined;
  const preamble = intro.join("\n").trim();
  return items.map((item) => withPreamble(preamble, item.join("\n").trim()));
}

/**
 * Items numbered in the running text: "1." (or "1)", "(1)") at the start or after a space, then "2." after a space,
 * and so on; a "2." must follow the end of a sentence or clause (". 2. ", ": 2. ", "; 2. ") so that a number ending a
 * sentence ("I have 2. Then…") starts nothing, while "2)" and "(2)" are markers wherever they stand.
 */
function inlineItems(request: string): string[] | undefined {
  if (request.length > MAX_QUESTION_SPLIT_CHARS) return undefined;
  const starts: { at: number; body: number }[] = [];
  const marker = /(^|\s)(?:\((\d{1,2})\)|(\d{1,2})([.)]))[ \t]+(?=\S)/g;
  for (const match of request.matchAll(marker)) {
    const number = Number(match[2] ?? match[3]);
    if (number !== starts.length + 1) continue;
    const at = match.index + match[1]!.length;
    const dotted = match[4] === ".";
    if (dotted && starts.length > 0 && !/[.!?;:,]\s*$/.test(request.slice(0, at))) continue;
    starts.push({ at, body: match.index + match[0].length });
  }
  if (starts.length < 2) return undefined;
  const preamble = request.slice(0, starts[0]!.at).trim();
  const items = starts.map((start, i) => request.slice(start.body, starts[i + 1]?.at ?? request.length).trim());
  if (items.some((item) => item === "")) return undefined;
  return items.map((item) => withPreamble(preamble, item));
}

function separateQuestions(request: string): string[] | undefined {
  if (request.length > MAX_QUESTION_SPLIT_CHARS) return undefined;
  // sentences end at . ! ? (or a line break); a question is one that ends with "?" (or the full-width ？)
  const sentences =
    request
      .match(/[^.!?？\n]+(?:[.!?？]+|\n|$)/g)
      ?.map((s) => s.trim())
      .filter((s) => s !== "") ?? [];
  const questions = sentences.filter((s) => /[?？]$/.test(s));
  if (questions.length < 2) return undefined;
  const firstQuestion = sentences.indexOf(questions[0]!);
  // statements after the first question would belong to one question or another: too ambiguous to split
  if (sentences.slice(firstQuestion).some((s) => !/[?？]$/.test(s))) return undefined;
  const preamble = sentences.slice(0, firstQuestion).join(" ");
  return questions.map((question) => withPreamble(preamble, question));
}

const withPreamble = (preamble: string, part: string): string => (preamble ? `${preamble}\n\n${part}` : part);

/** The heading that introduces a part in the combined answer ("1. What is X?"), one line, at most 120 characters. */
export function partHeading(index: number, prompt: string): string {
  const line =
    prompt
      .split(/\r?\n/)
      .filter((l) => l.trim() !== "")
      .at(-1)
      ?.trim() ?? "";
  const short = line.length > 120 ? `${line.slice(0, 117)}...` : line;
  return `${index + 1}. ${short}`;
}
