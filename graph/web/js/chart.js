// The rate over time as inline SVG: each week's own rate as a bar, the cumulative rate as a
// line, and the school's warning and barring thresholds as dashed rules.

import { svg } from "./dom.js";
import { percent, shortDate } from "./format.js";

const WIDTH = 640;
const HEIGHT = 260;
const MARGIN = { top: 16, right: 64, bottom: 34, left: 44 };
const MIN_WEEKS = 4;

function lowerBound(values) {
  const lowest = Math.min(...values);
  return Math.max(0, Math.floor((lowest - 5) / 10) * 10);
}

export function rateChart(weeks, { warning, mahroom }) {
  const innerWidth = WIDTH - MARGIN.left - MARGIN.right;
  const innerHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  // Before the first mark there is no rate to draw (the API's 100 means "nothing missed"):
  // those weeks are left out, down to MIN_WEEKS on the axis.
  const firstMarked = weeks.findIndex((point) => point.cumulativeClasses > 0);
  const points = firstMarked < 0 ? weeks : weeks.slice(Math.min(firstMarked, Math.max(0, weeks.length - MIN_WEEKS)));
  const since = points.findIndex((point) => point.cumulativeClasses > 0);
  const drawn = since < 0 ? [] : points.slice(since);
  const marked = points.filter((point) => point.totalClasses > 0);
  const low = lowerBound([
    mahroom,
    ...drawn.map((point) => point.cumulativeRate),
    ...marked.map((point) => point.attendanceRate),
  ]);
  const y = (rate) => MARGIN.top + ((100 - rate) / (100 - low)) * innerHeight;
  const band = innerWidth / points.length;
  const x = (index) => MARGIN.left + band * index + band / 2;
  const first = points[0];
  const last = points[points.length - 1];

  const grid = [];
  for (let rate = low; rate <= 100; rate += low >= 50 ? 10 : 20) {
    grid.push(
      svg("line", { class: "grid", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(rate), y2: y(rate) }),
      svg("text", { class: "axis", x: MARGIN.left - 8, y: y(rate) + 4, "text-anchor": "end", text: `${rate}%` }),
    );
  }
  const labelEvery = points.length > 12 ? Math.ceil(points.length / 12) : 1;
  const labels = points.map((point, index) =>
    (points.length - 1 - index) % labelEvery === 0
      ? svg("text", { class: "axis", x: x(index), y: HEIGHT - 12, "text-anchor": "middle", text: shortDate(point.weekStart) })
      : null,
  );
  const bars = points.map((point, index) =>
    point.totalClasses > 0
      ? svg(
          "rect",
          {
            class: "bar",
            x: x(index) - band * 0.3,
            y: y(point.attendanceRate),
            width: band * 0.6,
            height: Math.max(0, y(low) - y(point.attendanceRate)),
            rx: 3,
          },
          svg("title", { text: `Week of ${shortDate(point.weekStart)}: ${percent(point.attendanceRate)} (${point.totalClasses} periods)` }),
        )
      : null,
  );
  const threshold = (rate, name, label) => [
    svg("line", { class: `threshold ${name}`, x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(rate), y2: y(rate) }),
    svg("text", { class: `threshold-label ${name}`, x: WIDTH - MARGIN.right + 6, y: y(rate) + 4, text: label }),
  ];
  const path = drawn
    .map((point, index) => `${index ? "L" : "M"}${x(since + index)},${y(point.cumulativeRate)}`)
    .join(" ");
  const dots = drawn.map((point, index) =>
    svg(
      "circle",
      { class: "dot", cx: x(since + index), cy: y(point.cumulativeRate), r: point === last ? 5 : 3.5 },
      svg("title", { text: `Up to ${shortDate(point.weekEnd)}: ${percent(point.cumulativeRate)} overall` }),
    ),
  );
  const description = drawn.length
    ? `Overall attendance rate week by week from ${shortDate(drawn[0].weekStart)} to ` +
      `${shortDate(last.weekEnd)}: ${percent(drawn[0].cumulativeRate)} at the start, ` +
      `${percent(last.cumulativeRate)} now.`
    : `No periods marked from ${shortDate(first.weekStart)} to ${shortDate(last.weekEnd)}.`;
  return svg(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": "chart-svg-title chart-svg-desc",
    },
    svg("title", { id: "chart-svg-title", text: "Attendance rate over time" }),
    svg("desc", { id: "chart-svg-desc", text: description }),
    grid,
    bars,
    threshold(warning, "warning", "Warning"),
    threshold(mahroom, "mahroom", "Barred"),
    path ? svg("path", { class: "line", d: path }) : null,
    dots,
    labels,
  );
}
