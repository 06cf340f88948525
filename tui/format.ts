// Fixed-width text for the agent screen: padding, meters, sizes, durations and counts that keep columns aligned.

/** Cuts `text` to `width` cells, marking the cut with "…". */
export function fit(text: string, width: number): string {
  if (width <= 0) return "";
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, Math.max(0, width - 1)).join("")}…`;
}

export function padEnd(text: string, width: number): string {
  const cut = fit(text, width);
  return cut + " ".repeat(Math.max(0, width - [...cut].length));
}

export function padStart(text: string, width: number): string {
  const cut = fit(text, width);
  return " ".repeat(Math.max(0, width - [...cut].length)) + cut;
}

/** "2,931" */
export function count(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Tokens per second in at most 6 cells: "8.4", "42", "2,931", "12.3k". */
export function rate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return "—";
  if (perSecond < 10) return perSecond.toFixed(1);
  if (perSecond < 10_000) return count(perSecond);
  return `${(perSecond / 1000).toFixed(1)}k`;
}

/** MiB as "812M", "12.3G", "1.5T". */
export function mebibytes(mb: number): string {
  if (mb < 1024) return `${Math.round(mb)}M`;
  if (mb < 1024 * 1024) return `${(mb / 1024).toFixed(1)}G`;
  return `${(mb / 1024 / 1024).toFixed(1)}T`;
}

/** "0.4s", "12.3s", "2m05s", "1h02m", "3d04h". */
export function duration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const two = (n: number) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${two((s % 86_400) / 3600)}h`;
}

/** Parameters as "0.1M", "7.2B", "70B". */
export function parameters(n: number): string {
  if (n <= 0) return "?";
  if (n < 1e9) return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(n < 1e10 ? 1 : 0)}B`;
}

/**
 * An htop-style meter `[|||||||     12.3G/24.0G]` exactly `width` cells wide: bars for the fraction, the label
 * right-aligned inside (bars run under it, as in htop). Returns the bar part and the rest separately so that
 * the bars can take the colour that says how full it is.
 */
export function meter(
  fraction: number,
  label: string,
  width: number,
): { open: string; bars: string; rest: string; close: string } {
  const inner = Math.max(0, width - 2);
  const shownLabel = fit(label, inner);
  const filled = Math.round(Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0)) * inner);
  const labelStart = inner - [...shownLabel].length;
  const cells = Array.from({ length: inner }, (_, i) =>
    i >= labelStart ? shownLabel[i - labelStart]! : i < filled ? "|" : " ",
  );
  // bars end where they end, or where the label starts (the label keeps its own colour)
  const barEnd = Math.min(filled, labelStart);
  return { open: "[", bars: cells.slice(0, barEnd).join(""), rest: cells.slice(barEnd).join(""), close: "]" };
}

/** A solid progress bar `████████░░░░` of `width` cells. */
export function progressBar(fraction: number, width: number): { done: string; todo: string } {
  const cells = Math.max(0, width);
  const done = Math.round(Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0)) * cells);
  return { done: "█".repeat(done), todo: "░".repeat(cells - done) };
}

/** The colour that says how full a meter is. */
export function levelColor(fraction: number): "green" | "yellow" | "red" {
  return fraction < 0.6 ? "green" : fraction < 0.85 ? "yellow" : "red";
}

/** "14:03:27" in local time. */
export function clock(at: number): string {
  const d = new Date(at);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}
