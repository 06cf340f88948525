// The characters the classifier's features are made of (features.ts): CJK text's weight, digits and whitespace of any
// script normalised, and what splits words, in every script alike.

/** Chinese, Japanese and Korean carry about three Latin characters' worth of text per character. */
const CJK_WEIGHT = 3;
/** Counting CJK characters stops here: a megabyte paste costs no more than a long prompt. */
export const WEIGHT_SCAN_CHARS = 12_000;

function isCjk(code: number): boolean {
  return (code >= 0x3040 && code <= 0x30ff) || (code >= 0x3400 && code <= 0x9fff) || (code >= 0xac00 && code <= 0xd7af);
}

/** How much text a string is, a CJK character counting as three Latin ones. */
export function textWeight(text: string): number {
  const end = Math.min(text.length, WEIGHT_SCAN_CHARS);
  let cjk = 0;
  for (let i = 0; i < end; i++) if (isCjk(text.charCodeAt(i))) cjk++;
  // past the scan, assume the rest is like what was scanned
  return text.length + (CJK_WEIGHT - 1) * Math.round((cjk * text.length) / Math.max(1, end));
}

/** Digits of any script read as 0: "v2.4.1" and "v3.0.8" are the same shape, "१२" and "12" the same kind. */
function normalizedCode(code: number): number {
  if (code >= 0x30 && code <= 0x39) return 0x30;
  if (code <= 0x20 || code === 0xa0 || code === 0x3000) return 0x20;
  if ((code >= 0x660 && code <= 0x669) || (code >= 0x966 && code <= 0x96f) || (code >= 0xff10 && code <= 0xff19))
    return 0x30;
  return code;
}

/** Letters and digits of any script; ASCII punctuation and the CJK and general punctuation blocks split words. */
export function isWordCode(code: number): boolean {
  if (code < 0x80) return (code >= 0x61 && code <= 0x7a) || code === 0x30 || code === 0x5f;
  return !(
    (code >= 0x2000 && code <= 0x206f) ||
    (code >= 0x3000 && code <= 0x303f) ||
    (code >= 0xff01 && code <= 0xff0f) ||
    (code >= 0xff1a && code <= 0xff20)
  );
}

/** Normalized code units of `text` (digits → 0, whitespace runs → one space), padded with a space at each end. */
export function normalize(text: string, into: Uint16Array): number {
  let length = 0;
  into[length++] = 0x20;
  for (let i = 0; i < text.length; i++) {
    const code = normalizedCode(text.charCodeAt(i));
    if (code === 0x20 && into[length - 1] === 0x20) continue;
    into[length++] = code;
  }
  if (into[length - 1] !== 0x20) into[length++] = 0x20;
  return length;
}
