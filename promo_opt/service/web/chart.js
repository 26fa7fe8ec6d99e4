// A small SVG line chart: nice ticks, thousands separators, tick labels that never overlap,
// a chosen point, a hover cross-hair. No dependency; every element is built with the DOM API
// (nothing inline, so the page's Content-Security-Policy stays strict).

const SVG = "http://www.w3.org/2000/svg";

// colours per arm, by the arm's position in the campaign config (control first); the HTML report
// uses the same list (promo_opt/report/style.py) so an arm has one colour everywhere
export const ARM_COLORS = ["#6b6b6b", "#1f77b4", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d"];
export function armColor(index) { return ARM_COLORS[index % ARM_COLORS.length]; }

const grouped = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

// a number for people: thousands separators; small numbers keep a few significant digits
export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "-∞";
  const a = Math.abs(x);
  if (a >= 1000 || Number.isInteger(x)) return grouped.format(x);
  if (a === 0) return "0";
  return new Intl.NumberFormat("en-US", { maximumSignificantDigits: digits }).format(x);
}

// tick values from lo to hi with a 1-2-5 step and about n ticks
export function niceTicks(lo, hi, n) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / Math.max(n, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

const CHAR_PX = 7.2; // width of one tick-label character at the chart's 12px font (upper bound)

// the most x ticks whose labels fit side by side with a gap between neighbours
export function fittingXTicks(lo, hi, widthPx, format = fmt) {
  for (let n = 10; n >= 2; n--) {
    const ticks = niceTicks(lo, hi, n);
    const widest = Math.max(...ticks.map((t) => format(t).length)) * CHAR_PX + 14;
    if (ticks.length < 2 || widest * ticks.length <= widthPx) return ticks;
  }
  return niceTicks(lo, hi, 2);
}

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

// draw series [{name, xs, ys, color, dashed}] into svg, and under them an optional band {name, xs, lo, hi, color}
// (an interval around a series); returns scales for hover and markers
export function lineChart(svg, { series, xLabel, yLabel, marker = null, yFormat = fmt, band = null }) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const [W, H] = svg.getAttribute("viewBox").split(" ").slice(2).map(Number);
  const xsAll = series.flatMap((s) => s.xs);
  const ysAll = [...series.flatMap((s) => s.ys), ...(band ? [...band.lo, ...band.hi] : [])].filter((y) => Number.isFinite(y));
  let xlo = Math.min(...xsAll), xhi = Math.max(...xsAll);
  let ylo = Math.min(0, ...ysAll), yhi = Math.max(...ysAll, 0);
  if (!(xhi > xlo)) xhi = xlo + 1;
  if (!(yhi > ylo)) yhi = ylo + 1;
  const yTicks = niceTicks(ylo, yhi, 5);
  ylo = Math.min(ylo, yTicks[0]); yhi = Math.max(yhi, yTicks[yTicks.length - 1]);
  const left = 18 + Math.max(...yTicks.map((t) => yFormat(t).length)) * CHAR_PX + 8;
  const m = { left, right: 20, top: 14, bottom: 46 };
  const pw = W - m.left - m.right, ph = H - m.top - m.bottom;
  const xTicks = fittingXTicks(xlo, xhi, pw);
  const X = (x) => m.left + ((x - xlo) / (xhi - xlo)) * pw;
  const Y = (y) => m.top + ph - ((y - ylo) / (yhi - ylo)) * ph;
  const axes = el("g", { class: "axes", "font-size": 12, fill: "#333" }, svg);
  for (const t of yTicks) {
    el("line", { x1: m.left, x2: m.left + pw, y1: Y(t), y2: Y(t), stroke: "#e3e3e3" }, axes);
    const lab = el("text", { x: m.left - 6, y: Y(t) + 4, "text-anchor": "end", class: "ytick" }, axes);
    lab.textContent = yFormat(t);
  }
  for (const t of xTicks) {
    if (t < xlo - 1e-9 || t > xhi + 1e-9) continue;
    el("line", { x1: X(t), x2: X(t), y1: m.top + ph, y2: m.top + ph + 4, stroke: "#555" }, axes);
    const lab = el("text", { x: X(t), y: m.top + ph + 18, "text-anchor": "middle", class: "xtick" }, axes);
    lab.textContent = fmt(t);
  }
  el("line", { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph, stroke: "#555" }, axes);
  el("line", { x1: m.left, x2: m.left, y1: m.top, y2: m.top + ph, stroke: "#555" }, axes);
  el("text", { x: m.left + pw / 2, y: H - 6, "text-anchor": "middle" }, axes).textContent = xLabel;
  const yl = el("text", { x: 12, y: m.top + ph / 2, "text-anchor": "middle",
    transform: `rotate(-90 12 ${m.top + ph / 2})` }, axes);
  yl.textContent = yLabel;
  if (band) {
    const keep = band.xs.map((x, i) => i).filter((i) => Number.isFinite(band.lo[i]) && Number.isFinite(band.hi[i]));
    if (keep.length) {
      const upper = keep.map((i, j) => `${j ? "L" : "M"}${X(band.xs[i]).toFixed(1)},${Y(band.hi[i]).toFixed(1)}`);
      const lower = keep.slice().reverse().map((i) => `L${X(band.xs[i]).toFixed(1)},${Y(band.lo[i]).toFixed(1)}`);
      el("path", { d: `${upper.join("")}${lower.join("")}Z`, fill: band.color, "fill-opacity": 0.15, stroke: "none",
        class: "band", "data-name": band.name }, svg);
    }
  }
  for (const s of series) {
    const pts = s.xs.map((x, i) => [x, s.ys[i]]).filter(([, y]) => Number.isFinite(y));
    if (!pts.length) continue;
    el("path", { d: pts.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(""),
      fill: "none", stroke: s.color, "stroke-width": s.dashed ? 1.2 : 2, "stroke-dasharray": s.dashed ? "5 4" : "none",
      class: "series", "data-name": s.name }, svg);
  }
  if (marker && Number.isFinite(marker.x)) {
    el("line", { x1: X(marker.x), x2: X(marker.x), y1: m.top, y2: m.top + ph, stroke: "#b2182b", "stroke-dasharray": "4 3",
      class: "marker-line" }, svg);
    if (Number.isFinite(marker.y)) {
      el("circle", { cx: X(marker.x), cy: Y(marker.y), r: 5, fill: "#b2182b", class: "marker" }, svg);
    }
  }
  const hover = el("g", { class: "hover", visibility: "hidden" }, svg);
  el("line", { y1: m.top, y2: m.top + ph, stroke: "#888" }, hover);
  el("circle", { r: 4, fill: "#fff", stroke: "#333" }, hover);
  return { X, Y, m, pw, ph, xlo, xhi, W, H, hover,
    invertX: (px) => xlo + ((px - m.left) / pw) * (xhi - xlo) };
}

// the hover cross-hair at data point (x, y)
export function showHover(chart, x, y) {
  const [line, dot] = chart.hover.children;
  line.setAttribute("x1", chart.X(x)); line.setAttribute("x2", chart.X(x));
  dot.setAttribute("cx", chart.X(x)); dot.setAttribute("cy", Number.isFinite(y) ? chart.Y(y) : -10);
  chart.hover.setAttribute("visibility", "visible");
}

export function hideHover(chart) { chart.hover.setAttribute("visibility", "hidden"); }
