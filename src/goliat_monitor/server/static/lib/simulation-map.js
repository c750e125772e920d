/* The super study's simulation map: rows phantoms, columns frequencies, each cell one square per
 * direction × polarization (far field) or scenario × position × orientation (near field),
 * coloured by status and labelled with a glyph and a title, so colour is never the only cue.
 * A click shows that simulation's files, timings and a link into its worker's log. */
import { api, base } from "./api.js";
import { $, h, setText, throttle, timeEl } from "./dom.js";
import { fmt } from "./format.js";

const GLYPH = { PENDING: "·", RUNNING: "▶", DONE: "✓", FAILED: "✗" };
const ORDER = ["DONE", "RUNNING", "FAILED", "PENDING"];
const PILL = { PENDING: "pending", RUNNING: "running", DONE: "completed", FAILED: "failed" };

function freqLabel(f) { return f + " MHz"; }
function freqSort(a, b) {
  var x = Number(a), y = Number(b);
  if (!isNaN(x) && !isNaN(y)) return x - y;
  return String(a).localeCompare(String(b));
}

/* The part of a simulation its square stands for inside its (phantom, frequency) cell. */
export function placement(sim) {
  if (sim.direction !== null && sim.direction !== undefined) return sim.direction + " · " + sim.polarization;
  return [sim.scenario, sim.position, sim.orientation].filter(function (p) { return p; }).join(" · ");
}

export function describe(sim) {
  return sim.phantom + ", " + freqLabel(sim.frequencyMhz) + ", " + placement(sim) + ": " + sim.status;
}

export function simulationMap(studyId, explorer) {
  var root = $("#sim-map");
  var counts = $("#sim-counts");
  var panel = $("#sim-detail");
  var squares = new Map();
  var selected = null;
  var path = "/api/super-studies/" + encodeURIComponent(studyId) + "/simulations";

  function paint(button, sim) {
    var status = sim.status;
    if (button.dataset.status === status) return;
    button.dataset.status = status;
    button.className = "sim s-" + status.toLowerCase() + (selected === sim.key ? " selected" : "");
    button.setAttribute("title", describe(sim));
    button.setAttribute("aria-label", describe(sim));
    setText(button, GLYPH[status] || "?");
  }

  function build(list) {
    root.textContent = "";
    squares.clear();
    var phantoms = [], freqs = [], cells = new Map();
    list.forEach(function (sim) {
      if (phantoms.indexOf(sim.phantom) < 0) phantoms.push(sim.phantom);
      if (freqs.indexOf(sim.frequencyMhz) < 0) freqs.push(sim.frequencyMhz);
      var id = sim.phantom + "\u0000" + sim.frequencyMhz;
      if (!cells.has(id)) cells.set(id, []);
      cells.get(id).push(sim);
    });
    freqs.sort(freqSort);
    var head = h("tr", null, [h("th", { scope: "col", text: "Phantom \\ frequency" })].concat(
      freqs.map(function (f) { return h("th", { scope: "col", text: freqLabel(f) }); })));
    var body = h("tbody");
    phantoms.forEach(function (p) {
      var row = h("tr", null, [h("th", { scope: "row", text: p })]);
      freqs.forEach(function (f) {
        var td = h("td");
        var box = h("div", { class: "sim-cell" });
        (cells.get(p + "\u0000" + f) || []).forEach(function (sim) {
          var button = h("button", { type: "button", "data-key": sim.key });
          button.addEventListener("click", function () { select(sim.key); });
          paint(button, sim);
          squares.set(sim.key, button);
          box.append(button);
        });
        td.append(box);
        row.append(td);
      });
      body.append(row);
    });
    root.append(h("table", { class: "sim-grid" }, [h("thead", null, [head]), body]));
  }

  function render(list) {
    if (!list.length) {
      root.textContent = "";
      root.append(h("p", { class: "muted", text: "This campaign's configs imply no simulation the server can list." }));
      return;
    }
    var same = list.length === squares.size && list.every(function (sim) { return squares.has(sim.key); });
    if (!same) build(list);
    else list.forEach(function (sim) { paint(squares.get(sim.key), sim); });
    var tally = {};
    list.forEach(function (sim) { tally[sim.status] = (tally[sim.status] || 0) + 1; });
    counts.textContent = "";
    ORDER.forEach(function (status) {
      counts.append(h("span", { class: "legend-item", "data-status": status }, [
        h("span", { class: "sim s-" + status.toLowerCase(), "aria-hidden": "true", text: GLYPH[status] }),
        " " + status.charAt(0) + status.slice(1).toLowerCase() + " ",
        h("strong", { "data-f": "count-" + status.toLowerCase(), text: tally[status] || 0 })
      ]));
    });
    if (selected && squares.has(selected)) showDetail(selected);
  }

  function load() {
    return api(path).then(render).catch(function (error) {
      root.textContent = "";
      root.append(h("p", { class: "muted", text: "Could not list the simulations: " + error.message }));
    });
  }

  function select(key) {
    if (selected && squares.has(selected)) squares.get(selected).classList.remove("selected");
    selected = key;
    if (squares.has(key)) squares.get(key).classList.add("selected");
    showDetail(key);
  }

  function fact(label, value) { return [h("dt", { text: label }), h("dd", null, [value])]; }

  function showDetail(key) {
    api(path + "/detail?key=" + encodeURIComponent(key)).then(function (d) {
      if (selected !== key) return;
      panel.hidden = false;
      panel.textContent = "";
      var facts = h("dl", { class: "facts sim-facts" });
      [
        fact("Status", h("span", { class: "pill status-" + (PILL[d.status] || "none"), text: d.status })),
        fact("Assignment", document.createTextNode("#" + d.assignmentIndex + ", simulation " + d.number)),
        fact("Started", timeEl(d.startedAt)),
        fact("Finished", timeEl(d.finishedAt)),
        fact("Duration", document.createTextNode(d.durationS === null ? "—" : fmt.duration(d.durationS)))
      ].forEach(function (pair) { pair.forEach(function (node) { facts.append(node); }); });
      var close = h("button", { type: "button", class: "link", text: "Close" });
      close.addEventListener("click", function () {
        if (squares.has(selected)) squares.get(selected).classList.remove("selected");
        selected = null;
        panel.hidden = true;
      });
      panel.append(h("div", { class: "panel-head" }, [h("h3", { text: d.key }), close]), facts);
      panel.append(h("h4", { text: "Files" }));
      if (!d.files.length) panel.append(h("p", { class: "muted", text: "No files uploaded for " + d.resultPath + " yet." }));
      else {
        var files = h("ul", { class: "sim-files" });
        d.files.forEach(function (f) {
          var name = f.path.split("/").pop();
          var show = h("button", { type: "button", class: "link", text: name, title: "Show " + f.path + " in the result files" });
          show.addEventListener("click", function () { explorer.show({ name: name, path: f.path, size: f.size }); });
          files.append(h("li", null, [show, " ", h("span", { class: "size", text: fmt.size(f.size) })]));
        });
        panel.append(files);
      }
      panel.append(h("h4", { text: "Timings" }));
      if (!d.timings.length) panel.append(h("p", { class: "muted", text: "No timings reported for this simulation." }));
      else {
        var rows = d.timings.map(function (t) {
          return h("tr", null, [h("td", { text: t.phase }), h("td", { text: t.subtask || "—" }), h("td", { class: "num", text: t.seconds.toFixed(2) + " s" })]);
        });
        panel.append(h("table", { class: "table compact" }, [
          h("thead", null, [h("tr", null, [h("th", { scope: "col", text: "Phase" }), h("th", { scope: "col", text: "Subtask" }), h("th", { scope: "col", class: "num", text: "Time" })])]),
          h("tbody", null, rows)
        ]));
      }
      panel.append(h("h4", { text: "Log" }));
      if (d.log) {
        var href = base + "/workers/" + encodeURIComponent(d.log.workerId) + "?before=" + encodeURIComponent(d.log.before);
        panel.append(h("p", null, [h("a", { href: href, "data-f": "log-link", text: "Its worker's log where this simulation started" })]));
      } else {
        panel.append(h("p", { class: "muted", text: "No worker has reported starting this simulation." }));
      }
    }).catch(function (error) {
      panel.hidden = false;
      panel.textContent = "";
      panel.append(h("p", { class: "muted", text: "Could not load the simulation: " + error.message }));
    });
  }

  load();
  return { reload: throttle(load, 1000) };
}
