/* The campaign's results: the table of every simulation's figures (sortable, CSV download) and an
 * SVG plot of one figure against frequency, one line per phantom (the mean over directions and
 * polarizations, or scenarios), with the min–max spread as a band. Our own SVG, no library. */
import { api } from "./api.js";
import { $, h, setText, throttle } from "./dom.js";

const doc = document;
const SVG_NS = "http://www.w3.org/2000/svg";
const PREFERRED = ["whole_body_sar", "head_SAR", "peak_sar_10g_W_kg"];

function s(tag, attrs, text) {
  var node = doc.createElementNS(SVG_NS, tag);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined) node.textContent = text;
  return node;
}

export function formatNumber(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  var a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(3) : String(Number(v.toPrecision(4)));
}

function heading(column) { return column.label + (column.unit ? " (" + column.unit + ")" : ""); }

function compareValues(a, b) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

/* Points of one figure per phantom: [{phantom, points: [{f, mean, min, max, n}]}], by frequency. */
export function plotSeries(rows, figure) {
  var byPhantom = new Map();
  rows.forEach(function (row) {
    var value = row[figure], f = Number(row.frequencyMhz);
    if (typeof value !== "number" || isNaN(f)) return;
    if (!byPhantom.has(row.phantom)) byPhantom.set(row.phantom, new Map());
    var freqs = byPhantom.get(row.phantom);
    if (!freqs.has(f)) freqs.set(f, []);
    freqs.get(f).push(value);
  });
  var out = [];
  byPhantom.forEach(function (freqs, phantom) {
    var points = [];
    freqs.forEach(function (values, f) {
      var sum = values.reduce(function (x, y) { return x + y; }, 0);
      points.push({ f: f, mean: sum / values.length, min: Math.min.apply(null, values), max: Math.max.apply(null, values), n: values.length });
    });
    points.sort(function (a, b) { return a.f - b.f; });
    out.push({ phantom: phantom, points: points });
  });
  return out;
}

function drawPlot(svg, legend, series, column) {
  var W = 640, H = 300, L = 70, R = 12, T = 12, B = 40;
  svg.textContent = "";
  legend.textContent = "";
  var all = [];
  series.forEach(function (se) { se.points.forEach(function (p) { all.push(p); }); });
  if (!all.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, class: "axis empty", "text-anchor": "middle" }, "No values of this figure yet"));
    return;
  }
  var f0 = Math.min.apply(null, all.map(function (p) { return p.f; }));
  var f1 = Math.max.apply(null, all.map(function (p) { return p.f; }));
  var v0 = Math.min(0, Math.min.apply(null, all.map(function (p) { return p.min; })));
  var v1 = Math.max.apply(null, all.map(function (p) { return p.max; }));
  if (f1 === f0) { f0 -= 1; f1 += 1; }
  if (v1 === v0) v1 = v0 + 1;
  v1 += (v1 - v0) * 0.05;
  var x = function (f) { return L + ((f - f0) / (f1 - f0)) * (W - L - R); };
  var y = function (v) { return T + (1 - (v - v0) / (v1 - v0)) * (H - T - B); };
  for (var i = 0; i <= 4; i++) {
    var v = v0 + ((v1 - v0) * i) / 4, yy = y(v).toFixed(1);
    svg.append(s("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" }));
    svg.append(s("text", { x: L - 4, y: (Number(yy) + 3).toFixed(1), class: "axis", "text-anchor": "end" }, formatNumber(v)));
  }
  var freqs = Array.from(new Set(all.map(function (p) { return p.f; }))).sort(function (a, b) { return a - b; });
  freqs.forEach(function (f) {
    svg.append(s("text", { x: x(f).toFixed(1), y: H - B + 14, class: "axis", "text-anchor": "middle" }, String(f)));
  });
  svg.append(s("text", { x: (L + W - R) / 2, y: H - 6, class: "axis", "text-anchor": "middle" }, "Frequency (MHz)"));
  svg.append(s("text", { x: 12, y: T + (H - T - B) / 2, class: "axis", "text-anchor": "middle", transform: "rotate(-90 12 " + (T + (H - T - B) / 2) + ")" }, heading(column)));
  series.forEach(function (se, index) {
    var cls = "s" + (index % 5 + 1);
    var group = s("g", { class: "series " + cls, "data-phantom": se.phantom });
    if (se.points.some(function (p) { return p.n > 1; })) {
      var upper = se.points.map(function (p) { return x(p.f).toFixed(1) + "," + y(p.max).toFixed(1); });
      var lower = se.points.slice().reverse().map(function (p) { return x(p.f).toFixed(1) + "," + y(p.min).toFixed(1); });
      group.append(s("polygon", { points: upper.concat(lower).join(" "), class: "band" }));
    }
    var d = se.points.map(function (p, k) { return (k ? "L" : "M") + x(p.f).toFixed(1) + " " + y(p.mean).toFixed(1); }).join("");
    group.append(s("path", { d: d, class: "line" }));
    se.points.forEach(function (p) {
      var dot = s("circle", { cx: x(p.f).toFixed(1), cy: y(p.mean).toFixed(1), r: 3, class: "point" });
      dot.append(s("title", {}, se.phantom + ", " + p.f + " MHz: mean " + formatNumber(p.mean) + ", min " + formatNumber(p.min) + ", max " + formatNumber(p.max) + " over " + p.n + " simulation" + (p.n === 1 ? "" : "s")));
      group.append(dot);
    });
    svg.append(group);
    legend.append(h("span", { class: "legend-item" }, [h("span", { class: "swatch " + cls }), se.phantom]));
  });
}

export function resultsTable(studyId) {
  var table = $("#results-table");
  var select = $("#plot-figure");
  var svg = $("#results-plot");
  var legend = $("#plot-legend");
  var notes = $("#results-notes");
  var summary = $("#table-summary");
  var current = null;
  var sort = { name: null, desc: false };

  function visibleColumns(result) {
    return result.columns.filter(function (c) {
      if (c.kind === "figure" || c.name === "key") return true;
      return result.rows.some(function (r) { return r[c.name] !== null && r[c.name] !== undefined; });
    });
  }

  function renderTable(result) {
    var columns = visibleColumns(result);
    var rows = result.rows.slice();
    if (sort.name) {
      rows.sort(function (a, b) { var c = compareValues(a[sort.name], b[sort.name]); return sort.desc ? -c : c; });
    }
    var head = h("tr", null, columns.map(function (c) {
      var state = sort.name === c.name ? (sort.desc ? "descending" : "ascending") : "none";
      var button = h("button", { type: "button", class: "link sort", text: heading(c), "data-col": c.name });
      button.addEventListener("click", function () {
        sort = { name: c.name, desc: sort.name === c.name ? !sort.desc : false };
        renderTable(result);
      });
      return h("th", { scope: "col", "aria-sort": state, class: c.kind === "figure" ? "num" : null }, [button]);
    }));
    var body = h("tbody", null, rows.map(function (r) {
      return h("tr", { "data-key": r.key }, columns.map(function (c) {
        var value = r[c.name];
        return h("td", { class: c.kind === "figure" ? "num" : null, text: c.kind === "figure" ? formatNumber(value) : (value === null || value === undefined ? "—" : value) });
      }));
    }));
    table.textContent = "";
    table.append(h("thead", null, [head]), body);
  }

  function renderNotes(result) {
    notes.textContent = "";
    if (result.unreadable.length) {
      notes.append(h("p", { text: result.unreadable.length + " result file(s) could not be read:" }));
      notes.append(h("ul", { class: "unreadable" }, result.unreadable.map(function (u) {
        return h("li", null, [h("code", { text: u.path }), ": " + u.error]);
      })));
    }
    if (result.unmatched.length) {
      notes.append(h("p", { class: "muted", text: "Results in folders that are no simulation of this campaign: " + result.unmatched.join(", ") }));
    }
  }

  function renderPlot(result) {
    var figures = result.columns.filter(function (c) { return c.kind === "figure"; });
    var chosen = select.value;
    var names = figures.map(function (c) { return c.name; });
    if (names.indexOf(chosen) < 0) chosen = PREFERRED.find(function (n) { return names.indexOf(n) >= 0; }) || names[0] || "";
    if (select.dataset.names !== names.join("|")) {
      select.dataset.names = names.join("|");
      select.textContent = "";
      figures.forEach(function (c) { select.append(h("option", { value: c.name, text: heading(c) })); });
    }
    select.value = chosen;
    var column = figures.find(function (c) { return c.name === chosen; });
    if (!column) {
      svg.textContent = "";
      legend.textContent = "";
      svg.append(s("text", { x: 320, y: 150, class: "axis empty", "text-anchor": "middle" }, "No results yet"));
      return;
    }
    drawPlot(svg, legend, plotSeries(result.rows, chosen), column);
  }

  function render(result) {
    current = result;
    setText(summary, result.rows.length + " simulation" + (result.rows.length === 1 ? "" : "s") + " with results");
    renderTable(result);
    renderNotes(result);
    renderPlot(result);
  }

  function load() {
    return api("/api/super-studies/" + encodeURIComponent(studyId) + "/results/table").then(render).catch(function (error) {
      notes.textContent = "";
      notes.append(h("p", { class: "muted", text: "Could not load the results table: " + error.message }));
    });
  }

  select.addEventListener("change", function () { if (current) renderPlot(current); });
  load();
  return { reload: throttle(load, 1500) };
}
