// Aligned plain-text tables for the CLI's lists (nodes, tasks, leaderboard, stats): a few lines, no dependency.

export interface Column<Row> {
  header: string;
  value: (row: Row) => string;
  /** Numbers read best right-aligned. */
  align?: "left" | "right";
  /** Colours a cell's text (never its padding, so that columns stay aligned): see color.ts. */
  paint?: (text: string, row: Row) => string;
}

// Wide (CJK, emoji) characters are counted as one column: node ids and models are ASCII in practice.
const width = (text: string): number => [...text].length;

function pad(text: string, size: number, align: "left" | "right", shown = text): string {
  const fill = " ".repeat(Math.max(0, size - width(text)));
  return align === "right" ? fill + shown : shown + fill;
}

/** Header, then one line per row; columns two spaces apart; no trailing spaces. `empty` replaces no rows. */
export function renderTable<Row>(columns: Column<Row>[], rows: Row[], empty = "(none)"): string {
  // a newline or tab inside a cell would break the alignment of every line after it
  const cells = rows.map((row) => columns.map((c) => c.value(row).replace(/[\t\r\n]+/g, " ")));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...cells.map((line) => width(line[i]!))));
  const line = (values: string[], row?: Row) =>
    values
      .map((v, i) => {
        const column = columns[i]!;
        return pad(v, widths[i]!, column.align ?? "left", row !== undefined && column.paint ? column.paint(v, row) : v);
      })
      .join("  ")
      .trimEnd();
  const lines = [line(columns.map((c) => c.header)), ...cells.map((values, i) => line(values, rows[i]))];
  if (rows.length === 0) lines.push(empty);
  return `${lines.join("\n")}\n`;
}

/** Two columns, names left and values left, for one record (stats). */
export function renderFields(fields: [string, string][]): string {
  const size = Math.max(0, ...fields.map(([name]) => width(name)));
  return `${fields.map(([name, value]) => `${pad(name, size, "left")}  ${value}`.trimEnd()).join("\n")}\n`;
}
