/* The worker page: GOLIAT's progress window for one worker, live log, its GUI tabs drawn from data
 * (charts, timings table and pies) and its screenshots. */
import { startPage } from "../app.js";
import { ADMIN_NEEDED, ROLE_REFUSED, api, base } from "../lib/api.js";
import { fillWorkerCost, stageText, statusText } from "../lib/cards.js";
import { drawChart } from "../lib/charts.js";
import { $, field, h, setBar, setField, setText, statusClass, throttle, timeEl } from "../lib/dom.js";
import { fmt, parseTime, serverNow } from "../lib/format.js";
import { connectLive, reloadPage } from "../lib/live.js";
import { logConsole } from "../lib/log-console.js";
import { screenshotViewer } from "../lib/screenshots.js";
import { timingTabs } from "../lib/timings.js";

const doc = document;

function workerCharts(workerId) {
  var range = $("#chart-range");
  var points = [];
  var minutes = Number(range ? range.value : 60);

  function draw() {
    drawChart($("#chart-progress"), $("#legend-progress"), [
      { key: "progress", label: "Overall", cls: "c1" },
      { key: "stageProgress", label: "Stage", cls: "c2" }
    ], points, { minutes: minutes, yMax: 100, unit: "%", axisUnit: "%" });
    drawChart($("#chart-eta"), $("#legend-eta"), [
      { key: "etaMinutes", label: "Remaining", cls: "c3" }
    ], points, { minutes: minutes, yMax: 0, unit: " min" });
    drawChart($("#chart-util"), $("#legend-util"), [
      { key: "cpuPercent", label: "CPU", cls: "c1" },
      { key: "ramPercent", label: "RAM", cls: "c3" },
      { key: "gpuPercent", label: "GPU", cls: "c4" },
      { key: "vramPercent", label: "VRAM", cls: "c2" }
    ], points, { minutes: minutes, yMax: 100, unit: "%", axisUnit: "%" });
    drawChart($("#chart-vram"), $("#legend-vram"), [
      { key: "vramUsedGB", label: "Used", cls: "c4" },
      { key: "vramTotalGB", label: "Total", cls: "c5", dashed: true }
    ], points, { minutes: minutes, yMax: 0, unit: " GB" });
    drawChart($("#chart-disk"), $("#legend-disk"), [
      { key: "diskReadMBps", label: "Read", cls: "c1" },
      { key: "diskWriteMBps", label: "Write", cls: "c4" }
    ], points, { minutes: minutes, yMax: 0, unit: " MB/s" });
    drawChart($("#chart-faults"), $("#legend-faults"), [
      { key: "pageFaultsPerSec", label: "Page faults", cls: "c3" }
    ], points, { minutes: minutes, yMax: 0, unit: "/s" });
  }

  /* A sample from the API, in the units the charts draw. */
  function point(r) {
    var p = Object.assign({}, r);
    p.t = parseTime(r.t);
    p.etaMinutes = r.etaSeconds === null || r.etaSeconds === undefined ? null : r.etaSeconds / 60;
    p.vramPercent = r.vramUsedGB !== null && r.vramUsedGB !== undefined && r.vramTotalGB ? 100 * r.vramUsedGB / r.vramTotalGB : null;
    return p;
  }

  function load() {
    return api("/api/workers/" + encodeURIComponent(workerId) + "/samples?minutes=" + minutes).then(function (rows) {
      points = rows.map(point);
      draw();
    }).catch(function () { draw(); });
  }

  if (range) range.addEventListener("change", function () { minutes = Number(range.value); load(); });
  var redraw = throttle(draw, 1000);
  load();
  return {
    reload: load,
    addProgress: function (g) {
      if (!g || g.progress === null || g.progress === undefined) return;
      var now = serverNow(), eta = parseTime(g.eta);
      points.push({ t: now, progress: g.progress, stageProgress: g.stageProgress, etaMinutes: eta === null ? null : Math.max(0, eta - now) / 60000 });
      redraw();
    }
  };
}

// ---- the worker page -------------------------------------------------------------------------------

function fillWorkerPage(w) {
  var g = w.guiState || {};
  var head = $("#worker-head");
  head.dataset.light = w.light;
  head.dataset.status = w.status;
  setField(doc, "name", w.displayName);
  setField(doc, "statusText", statusText(w));
  setField(doc, "machineId", w.machineId || "");
  setField(doc, "hostname", w.hostname || "—");
  setField(doc, "gpu", w.gpuName || "—");
  setField(doc, "cpuCores", w.cpuCores || "—");
  setField(doc, "ram", w.totalRamGB ? Number(w.totalRamGB).toFixed(1) + " GB" : "—");
  var seen = field(doc, "seen");
  seen.dataset.ago = w.lastSeen || "";
  setText(seen, fmt.ago(w.lastSeen));
  setField(doc, "simCounter", g.simulationCount !== null && g.simulationCount !== undefined && g.totalSimulations ? g.simulationCount + " / " + g.totalSimulations : "N/A");
  setField(doc, "currentCase", g.currentCase || "N/A");
  setBar(doc, "progressBar", g.progress);
  setField(doc, "progress", fmt.pct(g.progress));
  setBar(doc, "stageBar", g.stageProgress);
  setField(doc, "stageProgress", fmt.pct(g.stageProgress));
  setField(doc, "stage", stageText(g));
  var eta = field(doc, "eta");
  eta.dataset.eta = g.eta || "";
  setText(eta, fmt.until(g.eta));
  var elapsed = field(doc, "elapsed");
  elapsed.dataset.until = g.finishedAt || "";
  setText(elapsed, fmt.elapsed(elapsed.dataset.since, elapsed.dataset.until));
  setField(doc, "warnings", g.warningCount || 0);
  setField(doc, "errors", g.errorCount || 0);
  setField(doc, "summary", w.summary || "");
  fillWorkerCost(doc, w);
  if (w.effectivePricePerHour !== undefined) {
    setField(doc, "price", fmt.money(w.effectivePricePerHour, w.currency) + (w.pricePerHour === null ? " (default)" : ""));
  }
  doc.title = (w.summary ? w.summary + " · " : "") + w.displayName + " · goliat-monitor";
}

function historyRow(a) {
  var studyLink = h("a", { href: base + "/super-studies/" + encodeURIComponent(a.superStudyId), text: a.studyName || a.superStudyId });
  var bar = h("div", { class: "bar small" }, [
    (function () { var p = h("progress", { max: "100", "aria-label": "Assignment progress" }); p.value = a.progress || 0; return p; })(),
    h("span", { class: "num", text: fmt.pct(a.progress) })
  ]);
  return h("tr", null, [
    h("td", null, [studyLink]),
    h("td", { class: "num", text: a.index }),
    h("td", null, [h("span", { class: statusClass(a.status), text: a.status })]),
    h("td", { class: "num", text: a.attempts }),
    h("td", null, [bar]),
    h("td", { text: a.currentStage || "—" }),
    h("td", null, [timeEl(a.startedAt)]),
    h("td", null, [timeEl(a.completedAt)])
  ]);
}

function init(data) {
  var workerId = data.id;
  var shown = new URLSearchParams(window.location.search);
  var historyMode = shown.has("before") || shown.has("line"); // an older page, or a search hit
  var log = logConsole(workerId, historyMode);
  var charts = workerCharts(workerId);
  var timings = timingTabs(workerId);
  var reloadTimings = throttle(function () { timings.reload(); }, 2000);
  var shots = screenshotViewer(workerId, data.screenshots || []);
  var studyNames = {};
  (data.assignments || []).forEach(function (a) { studyNames[a.superStudyId] = a.studyName; });

  // Screenshots, utilisation samples and the assignment list change rarely: fetch them again
  // when the worker changes, at most every 15 s.
  var refreshDetails = throttle(function () {
    api("/api/workers/" + encodeURIComponent(workerId)).then(function (w) {
      shots.update(w.screenshots || []);
      var body = $("#assignment-history tbody");
      body.textContent = "";
      (w.assignments || []).forEach(function (a) {
        a.studyName = studyNames[a.superStudyId];
        body.append(historyRow(a));
      });
      $("#history-empty").hidden = (w.assignments || []).length > 0;
    }).catch(function () { /* the next change tries again */ });
    charts.reload();
  }, 15000);

  // A machine that was offline comes back as a new session (a new worker id): point there.
  var lookedForNewer = false;
  function findNewerSession(w) {
    if (!w.isStale || lookedForNewer) return;
    lookedForNewer = true;
    api("/api/workers").then(function (all) {
      var newer = all.filter(function (o) { return o.machineId === w.machineId && (o.agentId || null) === (w.agentId || null) && o.id !== w.id; })[0];
      if (!newer) { lookedForNewer = false; return; }
      var banner = $("#newer-session");
      banner.querySelector("a").setAttribute("href", base + "/workers/" + encodeURIComponent(newer.id));
      banner.hidden = false;
    }).catch(function () { lookedForNewer = false; });
  }
  findNewerSession(data);

  var priceForm = $("#price-form");
  if (priceForm) priceForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var msg = $("#price-msg");
    var text = $("#price-input").value.trim().replace(",", ".");
    var price = text === "" ? null : Number(text);
    if (price !== null && !(isFinite(price) && price >= 0)) {
      setText(msg, "A price is a number of at least 0, or empty for the default.");
      return;
    }
    setText(msg, "Saving…");
    api("/api/workers/" + encodeURIComponent(workerId), {
      method: "PATCH",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ pricePerHour: price })
    }).then(function (w) {
      setText(msg, "Saved.");
      fillWorkerPage(w);
    }).catch(function (error) {
      setText(msg, error.status === 403 ? ROLE_REFUSED : error.status === 401
        ? "Not allowed: " + ADMIN_NEEDED
        : "Could not save: " + error.message);
    });
  });

  var form = $("#label-form");
  if (form) form.addEventListener("submit", function (event) {
    event.preventDefault();
    var msg = $("#label-msg");
    setText(msg, "Saving…");
    api("/api/workers/" + encodeURIComponent(workerId), {
      method: "PATCH",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ machineLabel: $("#label-input").value })
    }).then(function (w) {
      setText(msg, "Saved.");
      setField(doc, "name", w.machineLabel || w.hostname || w.machineId || w.id);
    }).catch(function (error) {
      setText(msg, error.status === 403 ? ROLE_REFUSED : error.status === 401
        ? "Not allowed: " + ADMIN_NEEDED
        : "Could not save: " + error.message);
    });
  });

  connectLive({
    worker: function (w) {
      if (w.id !== workerId) return;
      fillWorkerPage(w);
      charts.addProgress(w.guiState);
      refreshDetails();
      findNewerSession(w);
    },
    logs: function (batch) { if (batch.workerId === workerId) log.add(batch.lines); },
    timings: function (notice) { if (notice.workerId === workerId) reloadTimings(); },
    resync: function () {
      if (log.busy()) {
        setText($("#log-state"), "Some live updates were missed; reload the page to catch up.");
      } else {
        reloadPage();
      }
    }
  });
}

startPage(init);
