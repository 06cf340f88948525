// UTC hours, ISO weeks and connected time: the pure calendar arithmetic behind the periodic reputation rules.
/*
 * Time zone: UTC throughout. An hour is [HH:00, HH+1:00) UTC and is named by its start, e.g.
 * "2026-11-26T03". A week is an ISO 8601 week (Monday 00:00 UTC to the next Monday, numbered by the
 * ISO week-year whose Thursday it contains), e.g. "2026-W48". Promised hours are UTC hours of the day.
 */

export const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
export const WEEK_MS = 7 * DAY_MS;

/** The start of the UTC hour that contains `ms`. */
function hourStart(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/** "2026-11-26T03" for any instant in that UTC hour. */
export function hourLabel(ms: number): string {
  return new Date(hourStart(ms)).toISOString().slice(0, 13);
}

/** The start (Monday 00:00 UTC) of the ISO week that contains `ms`. */
export function isoWeekStart(ms: number): number {
  const day = Math.floor(ms / DAY_MS) * DAY_MS;
  const weekday = (new Date(day).getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  return day - weekday * DAY_MS;
}

/** "2026-W48" for any instant in that ISO week. */
export function isoWeekLabel(ms: number): string {
  // The ISO week-year is the calendar year of the week's Thursday: 1 January may belong to the previous
  // year's W52/W53, and 29-31 December to the next year's W01.
  const thursday = new Date(isoWeekStart(ms) + 3 * DAY_MS);
  const year = thursday.getUTCFullYear();
  const firstThursdayWeek = isoWeekStart(Date.UTC(year, 0, 4)); // 4 January is always in week 1
  const week = Math.round((isoWeekStart(ms) - firstThursdayWeek) / WEEK_MS) + 1;
  return `${year}-W${String(week).padStart(2, "0")}`;
}

/** The completed UTC hours (their starts) among the `count` hours before the one containing `nowMs`, oldest first. */
export function completedHours(nowMs: number, count: number): number[] {
  const current = hourStart(nowMs);
  return Array.from({ length: count }, (_, i) => current - (count - i) * HOUR_MS);
}

/** The starts of the `count` completed ISO weeks before the one containing `nowMs`, oldest first. */
export function completedWeeks(nowMs: number, count: number): number[] {
  const current = isoWeekStart(nowMs);
  return Array.from({ length: count }, (_, i) => current - (count - i) * WEEK_MS);
}

export interface Interval {
  from: number;
  to: number;
}

/** Sorted, non-overlapping intervals: a node connected twice at once (a replacing connection) counts once. */
export function mergeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = intervals.filter((i) => i.to > i.from).sort((a, b) => a.from - b.from);
  const merged: Interval[] = [];
  for (const interval of sorted) {
    const last = merged.at(-1);
    if (last && interval.from <= last.to) last.to = Math.max(last.to, interval.to);
    else merged.push({ ...interval });
  }
  return merged;
}

/** How many milliseconds of [from, to) the merged intervals cover. */
export function coveredMs(merged: readonly Interval[], from: number, to: number): number {
  let total = 0;
  for (const interval of merged) {
    const start = Math.max(from, interval.from);
    const end = Math.min(to, interval.to);
    if (end > start) total += end - start;
  }
  return total;
}

/**
 * The UTC hours of the day a node promised, from nodes.promised_hours: a JSON array of integers 0-23.
 * Any other shape (NULL, an object, out-of-range numbers) is no promise, so nobody is penalised for a
 * promise the coordinator cannot read.
 */
export function parsePromisedHours(value: unknown): Set<number> | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  if (!value.every((h) => Number.isInteger(h) && h >= 0 && h <= 23)) return undefined;
  return new Set(value as number[]);
}
