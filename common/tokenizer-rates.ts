// Characters per token of a model's tokenizer: measured by agents (agent/tokenizer-rates.ts), sent at
// registration (Register.tokenizer_rates) and used by the coordinator to split documents (context mode).

export interface TokenizerRates {
  /** Characters per token of ASCII text (English prose and code). */
  asciiCharsPerToken: number;
  /** Characters per token of other text (CJK, Cyrillic, Greek, accented Latin). */
  otherCharsPerToken: number;
}

/**
 * The estimate without a tokenizer: 3.5 ASCII characters per token, 1 other character per token. Byte-pair
 * vocabularies of Llama, Mistral, Qwen and GPT models average about 4 ASCII characters per token on English
 * prose and code, and about 1–2 characters per token on other scripts (CJK about 1), so it errs on the large side.
 */
export const ESTIMATED_RATES: TokenizerRates = { asciiCharsPerToken: 3.5, otherCharsPerToken: 1 };
