/* Small hand-made SVG line charts. */
import { h } from "./dom.js";
import { fmt, serverNow } from "./format.js";

const doc = document;

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  var node = doc.createElementNS(SVG_NS, tag);
  Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
  if (text !== undefined) node.textContent = text;
  return node;
}

/* The smallest of 1, 2, 2.5, 4, 5, 8 x 10^k at or above `value`: four even grid steps. */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  var scale = Math.pow(10, Math.floor(Math.log10(value)));
  var steps = [1, 2, 2.5, 4, 5, 8, 10];
  for (var i = 0; i < steps.length; i++) if (steps[i] * scale >= value) return steps[i] * scale;
  return 10 * scale;
}

/* series: [{key, label, cls, dashed}], points: [{t (ms), <key>: number|null}] */
export function drawChart(svg, legend, series, points, options) {
  var W = 400, H = 160, L = 38, R = 8, T = 8, B = 20;
  var now = serverNow();
  var t0 = now - options.minutes * 60000, t1 = now;
  var yMax = options.yMax;
  if (!yMax) {
    var top = 0;
    points.forEach(function (p) { series.forEach(function (se) { var v = p[se.key]; if (v !== null && v !== undefined && v > top) top = v; }); });
    yMax = niceCeiling(top * 1.05);
  }
  var x = function (t) { return L + ((t - t0) / (t1 - t0)) * (W - L - R); };
  var y = function (v) { return T + (1 - Math.min(v, yMax) / yMax) * (H - T - B); };
  svg.textContent = "";
  for (var i = 0; i <= 4; i++) {
    var v = (yMax * i) / 4, yy = y(v).toFixed(1);
    svg.append(s("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" }));
    svg.append(s("text", { x: L - 4, y: (Number(yy) + 3).toFixed(1), class: "axis", "text-anchor": "end" }, (Math.round(v * 10) / 10) + (options.axisUnit || "")));
  }
  for (var j = 0; j <= 3; j++) {
    var tt = t0 + ((t1 - t0) * j) / 3, xx = x(tt).toFixed(1);
    svg.append(s("text", { x: xx, y: H - 5, class: "axis", "text-anchor": j === 0 ? "start" : j === 3 ? "end" : "middle" }, fmt.clock(new Date(tt).toISOString()).slice(0, 5)));
  }
  legend.textContent = "";
  var any = false;
  series.forEach(function (se) {
    var d = "", last = null, prevT = null;
    var gapMs = Math.max(120000, options.minutes * 60000 / 30);
    points.forEach(function (p) {
      var value = p[se.key];
      if (value === null || value === undefined || p.t < t0) return;
      var cmd = prevT === null || p.t - prevT > gapMs ? "M" : "L";
      d += cmd + x(p.t).toFixed(1) + " " + y(value).toFixed(1);
      prevT = p.t;
      last = value;
    });
    if (d) { svg.append(s("path", { d: d, class: "line " + se.cls + (se.dashed ? " dashed" : "") })); any = true; }
    var item = h("span", { class: "legend-item" }, [h("span", { class: "swatch " + se.cls }), se.label + " "]);
    item.append(h("strong", { text: last === null ? "—" : (options.unit === "%" ? fmt.pct(last) : last.toFixed(1) + (options.unit || "")) }));
    legend.append(item);
  });
  if (!any) svg.append(s("text", { x: (L + W - R) / 2, y: H / 2, class: "axis empty", "text-anchor": "middle" }, "No data in this range"));
}

/* The path of one pie slice from angle a0 to a1 (radians, clockwise from 12 o'clock). */
function slicePath(cx, cy, r, a0, a1) {
  var x0 = cx + r * Math.sin(a0), y0 = cy - r * Math.cos(a0);
  var x1 = cx + r * Math.sin(a1), y1 = cy - r * Math.cos(a1);
  var large = a1 - a0 > Math.PI ? 1 : 0;
  return "M" + cx + " " + cy + "L" + x0.toFixed(2) + " " + y0.toFixed(2) +
    "A" + r + " " + r + " 0 " + large + " 1 " + x1.toFixed(2) + " " + y1.toFixed(2) + "Z";
}

/* pie: {title, slices: [{key, label, seconds, percent}]}, as GET /api/workers/{id}/timings gives
 * it. Slices keep the server's order; "Others" is always grey, the rest take the palette in turn. */
export function drawPie(svg, legend, pie) {
  var cx = 80, cy = 80, r = 70;
  svg.textContent = "";
  legend.textContent = "";
  if (!pie.slices.length) {
    svg.append(s("circle", { cx: cx, cy: cy, r: r, class: "pie-empty" }));
    svg.append(s("text", { x: cx, y: cy + 4, class: "axis empty", "text-anchor": "middle" }, "No data"));
    return;
  }
  var angle = 0, colour = 0;
  pie.slices.forEach(function (slice) {
    var cls = slice.key === "Others" ? "p-others" : "p" + (colour++ % 6 + 1);
    var sweep = (slice.percent / 100) * 2 * Math.PI;
    var shape = slice.percent >= 99.999
      ? s("circle", { cx: cx, cy: cy, r: r, class: "slice " + cls })
      : s("path", { d: slicePath(cx, cy, r, angle, angle + sweep), class: "slice " + cls });
    shape.append(s("title", {}, slice.label + ": " + slice.percent.toFixed(1) + " % (" + slice.seconds.toFixed(2) + " s)"));
    svg.append(shape);
    angle += sweep;
    var item = h("span", { class: "legend-item" }, [h("span", { class: "swatch dot " + cls }), slice.label + " "]);
    item.append(h("strong", { text: slice.percent.toFixed(1) + " %" }));
    legend.append(item);
  });
}
