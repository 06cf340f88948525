// The dashboard's tokens/s chart: a uPlot line over the last five minutes, points kept in the page.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { clockTime } from "../shared/labels.ts";

/** Seconds of history kept and shown at most; a young page shows at least the last minute. */
const WINDOW_S = 300;
const MIN_WINDOW_S = 60;

export class ThroughputChart {
  readonly #xs: number[] = [];
  readonly #ys: (number | null)[] = [];
  readonly #plot: uPlot;

  constructor(private readonly container: HTMLElement) {
    const style = getComputedStyle(document.documentElement);
    const color = (name: string) => style.getPropertyValue(name).trim() || "#888";
    const axis = {
      stroke: color("--muted"),
      grid: { stroke: color("--border"), width: 1 },
      ticks: { stroke: color("--border"), width: 1 },
    };
    this.#plot = new uPlot(
      {
        width: this.#width(),
        height: 220,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          // a window ending at the newest sample, growing from one minute to five as samples accumulate
          x: {
            time: true,
            range: (_u, min, max) => [max - Math.min(WINDOW_S, Math.max(MIN_WINDOW_S, max - min)), max],
          },
          y: { range: (_u, _min, max) => [0, Math.max(10, max * 1.15)] },
        },
        series: [
          {},
          {
            label: "tokens/s",
            stroke: color("--accent"),
            width: 2,
            fill: `${color("--accent")}22`,
            points: { show: false },
          },
        ],
        axes: [
          { ...axis, values: (_u, ticks) => ticks.map((t) => clockTime(t * 1000)) },
          { ...axis, size: 56, values: (_u, ticks) => ticks.map((t) => (t >= 1000 ? `${t / 1000}k` : String(t))) },
        ],
      },
      [[], []],
      container,
    );
    new ResizeObserver(() => this.#plot.setSize({ width: this.#width(), height: 220 })).observe(container);
  }

  /** Adds one sample; a gap of more than a few seconds (a lost stream) stays a gap instead of a straight line. */
  add(atUnixMs: number, tokensPerSecond: number): void {
    const x = atUnixMs / 1000;
    const last = this.#xs.at(-1);
    if (last !== undefined && x <= last) return;
    if (last !== undefined && x - last > 5) {
      this.#xs.push(last + 1);
      this.#ys.push(null);
    }
    this.#xs.push(x);
    this.#ys.push(tokensPerSecond);
    while (this.#xs.length > 0 && this.#xs[0]! < x - WINDOW_S) {
      this.#xs.shift();
      this.#ys.shift();
    }
    this.#plot.setData([this.#xs, this.#ys]);
  }

  get points(): number {
    return this.#xs.length;
  }

  #width(): number {
    return Math.max(240, this.container.clientWidth);
  }
}
