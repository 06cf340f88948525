// UTC calendar months as "YYYY-MM" text: the payout period, the payout_runs key.

const monthPattern = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** The month as [start, end) instants in UTC; throws RangeError for anything but "YYYY-MM". */
export function monthRange(month: string): { start: Date; end: Date } {
  const match = monthPattern.exec(month);
  if (!match) throw new RangeError(`month must look like 2026-11, got ${JSON.stringify(month)}`);
  const year = Number(match[1]);
  const index = Number(match[2]) - 1;
  return { start: new Date(Date.UTC(year, index, 1)), end: new Date(Date.UTC(year, index + 1, 1)) };
}

/** The UTC month an instant falls in. */
export function monthOf(at: Date | number): string {
  const date = new Date(at);
  return `${String(date.getUTCFullYear()).padStart(4, "0")}-${String(date.getUTCMonth() + 1).padStart(2, "0")}`;
}

export function addMonths(month: string, count: number): string {
  const { start } = monthRange(month);
  return monthOf(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + count, 1));
}

/** Every month from `first` to `last`, both included (empty when last precedes first). */
export function monthsFrom(first: string, last: string): string[] {
  const months: string[] = [];
  // "YYYY-MM" text sorts like the months themselves
  for (let month = first; month <= last; month = addMonths(month, 1)) months.push(month);
  return months;
}
