/* GOLIAT's Timings and Timings Piecharts tabs, drawn from GET /api/workers/{id}/timings. */
import { api } from "./api.js";
import { drawPie } from "./charts.js";
import { $, h } from "./dom.js";

const STATS = ["count", "mean", "median", "min", "max", "p10", "p25", "p75", "p90"];

function seconds(value) { return value === null || value === undefined ? "—" : value.toFixed(2); }

function tableRow(row) {
  var cells = [
    h("td", { text: row.phase }),
    h("td", { class: row.subtask ? null : "muted", text: row.subtask || "---" })
  ];
  STATS.forEach(function (key) {
    cells.push(h("td", { class: "num", text: key === "count" ? row.count : seconds(row[key]) }));
  });
  return h("tr", { class: row.subtask ? null : "phase-total" }, cells);
}

function pieFigure(pie, index) {
  var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 160 160");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", pie.title + " pie chart");
  svg.id = "pie-" + index;
  var legend = h("div", { class: "legend" });
  drawPie(svg, legend, pie);
  return h("figure", { class: "chart pie" }, [h("figcaption", { text: pie.title }), svg, legend]);
}

/* The table and pies of one worker's current run; `reload` fetches them again. */
export function timingTabs(workerId) {
  function show(data) {
    var body = $("#timings-table tbody");
    body.textContent = "";
    data.table.forEach(function (row) { body.append(tableRow(row)); });
    $("#timings-empty").hidden = data.table.length > 0;
    var grid = $("#pie-grid");
    grid.textContent = "";
    data.pies.forEach(function (pie, index) { grid.append(pieFigure(pie, index)); });
  }

  function load() {
    return api("/api/workers/" + encodeURIComponent(workerId) + "/timings").then(show)
      .catch(function () { /* the next notice tries again */ });
  }

  load();
  return { reload: load };
}
