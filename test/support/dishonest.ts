// A backend that lies, for tests only: every answer it sends is altered, so that the network's consensus comparison,
// spot checks and canaries can be seen catching a node (test/support/dishonest-agent.ts runs the real agent with it).
import type { Backend, GeneratedPiece, GenerateRequest, GenerateResult } from "../../agent/backends/backend.ts";

/** What a dishonest node does to its text: ROT13 on letters, +5 on digits (same length, different words). */
export function alter(text: string): string {
  return text
    .replace(/[a-z]/gi, (c) => {
      const base = c <= "Z" ? 65 : 97;
      return String.fromCharCode(((c.charCodeAt(0) - base + 13) % 26) + base);
    })
    .replace(/\d/g, (d) => String((Number(d) + 5) % 10));
}

/** `backend` with every generated piece altered; the usage, timings and everything else are untouched. */
export function dishonestBackend(backend: Backend): Backend {
  return {
    kind: backend.kind,
    describe: () => backend.describe(),
    ...(backend.countTokens ? { countTokens: (text: string) => backend.countTokens!(text) } : {}),
    close: () => backend.close(),
    async *generate(request: GenerateRequest): AsyncGenerator<GeneratedPiece, GenerateResult, void> {
      const pieces = backend.generate(request);
      for (;;) {
        const next = await pieces.next();
        if (next.done) return next.value;
        yield { ...next.value, text: alter(next.value.text) };
      }
    },
  };
}
