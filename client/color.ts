// Colour for the CLI's human output: difficulty and tier in the agent screen's colours, on a terminal only.

/** Whether a stream gets colour: only a terminal, and never with NO_COLOR set to anything (https://no-color.org). */
export function wantsColor(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

const sgr = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36 } as const;
type Hue = keyof typeof sgr;

// the same meanings as the agent's screen (tui/tasks-table.tsx, tui/panels.tsx)
const difficultyHues: Record<string, Hue> = { SIMPLE: "green", COMPLEX: "yellow", ADVANCED: "red" };
const tierHues: Record<string, Hue> = { BASIC: "blue", MID: "cyan", PRO: "magenta" };

export interface Palette {
  /** `text` painted in the colour of the difficulty `name` (SIMPLE, COMPLEX, ADVANCED); unchanged otherwise. */
  difficulty(name: string, text?: string): string;
  /** `text` painted in the colour of the tier `name` (BASIC, MID, PRO); unchanged otherwise. */
  tier(name: string, text?: string): string;
}

function paint(enabled: boolean, hue: Hue | undefined, text: string): string {
  return enabled && hue ? `\x1b[${sgr[hue]}m${text}\x1b[39m` : text;
}

export function palette(enabled: boolean): Palette {
  return {
    difficulty: (name, text = name) => paint(enabled, difficultyHues[name], text),
    tier: (name, text = name) => paint(enabled, tierHues[name], text),
  };
}
