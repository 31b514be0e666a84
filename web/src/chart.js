// A time-series chart (uPlot) that fills its container's width and grows point by point.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];

export class TimeChart {
  /** label: the series' name; unit: shown on the axis; kind: "line", "area" or "bar". */
  constructor(container, { label, unit, kind = "line", color = 0, height = 180 } = {}) {
    this.container = container;
    this.xs = [];
    this.ys = [];
    const stroke = COLORS[color % COLORS.length];
    const series = { label: unit ? `${label} (${unit})` : label, stroke, width: 2,
                     spanGaps: false, points: { show: false } };
    if (kind === "area") series.fill = `${stroke}33`;
    if (kind === "bar") {
      series.paths = uPlot.paths.bars({ size: [0.8, 40] });
      series.fill = `${stroke}aa`;
    }
    this.plot = new uPlot({
      width: Math.max(200, container.clientWidth || 300),
      height: container.dataset.fill ? Math.max(80, container.clientHeight - 40) : height,
      legend: { show: true, live: false },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [{ stroke: "currentColor", grid: { stroke: "#8884" } },
             { stroke: "currentColor", grid: { stroke: "#8884" }, size: 50 }],
      series: [{}, series],
    }, [this.xs, this.ys], container);
    this.resizer = new ResizeObserver(() => this.fit());
    this.resizer.observe(container);
  }

  fit() {
    const width = this.container.clientWidth;
    if (width > 0) {
      const height = this.container.dataset.fill ? Math.max(80, this.container.clientHeight - 40)
        : this.plot.height;
      this.plot.setSize({ width, height });
    }
  }

  /** Replace the data: points [[epoch seconds, value], ...] in time order. */
  set(points) {
    this.xs = points.map((p) => p[0]);
    this.ys = points.map((p) => p[1]);
    this.plot.setData([this.xs, this.ys]);
  }

  /** Add a point, keeping time order, and drop those older than `since` (epoch seconds). */
  add(t, value, since) {
    let i = this.xs.length;
    while (i > 0 && this.xs[i - 1] > t) i--;
    this.xs.splice(i, 0, t);
    this.ys.splice(i, 0, value);
    while (since && this.xs.length && this.xs[0] < since) {
      this.xs.shift();
      this.ys.shift();
    }
    this.plot.setData([this.xs, this.ys]);
  }

  destroy() {
    this.resizer.disconnect();
    this.plot.destroy();
  }
}

/** A range's length in seconds: "-15m" -> 900. */
export function rangeSeconds(range) {
  const m = /^-(\d+)(s|m|h|d|w)$/.exec(range || "");
  if (!m) return 3600;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
}

// Up to 6 hours: every reading. Longer: buckets, about 100-300 per chart.
export function intervalFor(range) {
  const seconds = rangeSeconds(range);
  if (seconds <= 6 * 3600) return null;
  if (seconds <= 86400) return "5m";
  if (seconds <= 7 * 86400) return "1h";
  return "6h";
}

export const RANGES = [
  { value: "-15m", label: "Last 15 minutes" }, { value: "-1h", label: "Last hour" },
  { value: "-6h", label: "Last 6 hours" }, { value: "-24h", label: "Last 24 hours" },
  { value: "-7d", label: "Last 7 days" }, { value: "-30d", label: "Last 30 days" },
];
