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
