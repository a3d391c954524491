// Inline SVG bar charts, drawn here (no library). Each chart has a title and a text
// description for screen readers; the numbers are also in a table next to it.

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2457d6", "#e07a1f", "#2a9d5b", "#b03a8c", "#7a5cd6", "#c9a227", "#3b8ea5", "#d64545"];

function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

export function colorFor(index) {
  return PALETTE[index % PALETTE.length];
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * exp) return step * exp;
  return 10 * exp;
}

// labels: ["2025-01-01", …]; series: [{name, values: [number, …]}] stacked per label.
export function barChart({ title, labels, series, format = (v) => String(v), height = 180 }) {
  const width = window.innerWidth < 600 ? 360 : 600;
  const left = 48;
  const bottom = 22;
  const top = 8;
  const plotH = height - bottom - top;
  const totals = labels.map((_, i) => series.reduce((s, ser) => s + (ser.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
  const titleNode = svg("title");
  const peak = totals.length ? Math.max(...totals) : 0;
  titleNode.textContent = `${title}: ${labels.length} bars, highest ${format(peak)}, total ${format(totals.reduce((a, b) => a + b, 0))}`;
  root.append(titleNode);
  for (const frac of [0, 0.5, 1]) {
    const y = top + plotH * (1 - frac);
    root.append(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }));
    const t = svg("text", { x: left - 4, y: y + 4, "text-anchor": "end", class: "axis" });
    t.textContent = format(max * frac);
    root.append(t);
  }
  const slot = (width - left) / Math.max(1, labels.length);
  const barW = Math.max(2, slot * 0.7);
  labels.forEach((label, i) => {
    let acc = 0;
    series.forEach((ser, si) => {
      const v = ser.values[i] || 0;
      if (v <= 0) return;
      const h = (v / max) * plotH;
      const y = top + plotH - ((acc + v) / max) * plotH;
      const rect = svg("rect", { x: left + i * slot + (slot - barW) / 2, y, width: barW, height: Math.max(0.5, h), fill: colorFor(si) });
      const tip = svg("title");
      tip.textContent = `${label} · ${ser.name}: ${format(v)}`;
      rect.append(tip);
      root.append(rect);
      acc += v;
    });
    const every = Math.ceil(labels.length / 8);
    if (i % every === 0) {
      const t = svg("text", { x: left + i * slot + slot / 2, y: height - 6, "text-anchor": "middle", class: "axis" });
      t.textContent = label.length > 5 ? label.slice(5) : label;
      root.append(t);
    }
  });
  return root;
}

export function legend(names) {
  const list = document.createElement("ul");
  list.className = "legend";
  names.forEach((name, i) => {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = colorFor(i);
    li.append(sw, document.createTextNode(name));
    list.append(li);
  });
  return list;
}
