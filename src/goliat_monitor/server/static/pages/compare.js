/* Two super studies' figures side by side per simulation, with the relative difference. */
import { startPage } from "../app.js";
import { api, base } from "../lib/api.js";
import { $, h } from "../lib/dom.js";
import { formatNumber } from "../lib/results-table.js";

const PREFERRED = ["whole_body_sar", "head_SAR", "peak_sar_10g_W_kg"];

function percent(v) { return v === null || v === undefined ? "—" : (v >= 0 ? "+" : "") + (v * 100).toFixed(2) + " %"; }
function heading(c) { return c.label + (c.unit ? " (" + c.unit + ")" : ""); }

function render(result, select) {
  var figures = result.columns.filter(function (c) { return c.kind === "figure"; });
  var names = figures.map(function (c) { return c.name; });
  if (!select.options.length) {
    figures.forEach(function (c) { select.append(h("option", { value: c.name, text: heading(c) })); });
    select.value = PREFERRED.find(function (n) { return names.indexOf(n) >= 0; }) || names[0] || "";
  }
  var figure = select.value;
  var keys = result.columns.filter(function (c) {
    return c.kind === "key" && result.rows.some(function (r) { return r[c.name] !== null && r[c.name] !== undefined; });
  });
  var table = $("#cmp-table");
  table.textContent = "";
  var head = keys.map(function (c) { return h("th", { scope: "col", text: c.label }); }).concat([
    h("th", { scope: "col", class: "num", text: result.study.name }),
    h("th", { scope: "col", class: "num", text: result.other.name }),
    h("th", { scope: "col", class: "num", text: "Difference" })
  ]);
  var rows = result.rows.map(function (r) {
    var cell = r.figures[figure] || { this: null, other: null, relDiff: null };
    var big = cell.relDiff !== null && Math.abs(cell.relDiff) >= 0.05;
    return h("tr", { "data-key": r.key }, keys.map(function (c) { return h("td", { text: r[c.name] === null || r[c.name] === undefined ? "—" : r[c.name] }); }).concat([
      h("td", { class: "num", text: formatNumber(cell.this) }),
      h("td", { class: "num", text: formatNumber(cell.other) }),
      h("td", { class: "num" + (big ? " diff-big" : ""), "data-f": "reldiff", text: percent(cell.relDiff) })
    ]));
  });
  table.append(h("thead", null, [h("tr", null, head)]), h("tbody", null, rows));
  var summary = $("#cmp-summary");
  summary.textContent = "";
  summary.append(h("p", { class: "muted", text: result.sharedSimulations + " simulation(s) compared." }));
  if (result.onlyInStudy.length || result.onlyInOther.length) {
    summary.append(h("p", { class: "muted", text: result.onlyInStudy.length + " only in " + result.study.name + ", " + result.onlyInOther.length + " only in " + result.other.name + "." }));
  }
}

function init(data) {
  var select = $("#cmp-figure");
  var message = $("#cmp-message");
  var query = "?with=" + encodeURIComponent(data.otherId) + (data.intersect ? "&intersect=true" : "");
  api("/api/super-studies/" + encodeURIComponent(data.id) + "/results/compare" + query).then(function (result) {
    render(result, select);
    select.addEventListener("change", function () { render(result, select); });
  }).catch(function (error) {
    message.textContent = "";
    message.append(h("p", { class: "banner", text: error.message }));
    if (error.status === 409 && !data.intersect) {
      var href = base + "/super-studies/" + encodeURIComponent(data.id) + "/compare" + query + "&intersect=true";
      message.append(h("p", null, [h("a", { href: href, text: "Compare the simulations both have" })]));
    }
  });
}

startPage(init);
