/* The super study page: master progress, every assignment with its actions, history and results. */
import { startPage } from "../app.js";
import { actionError, base, postJson } from "../lib/api.js";
import { fillStudy } from "../lib/cards.js";
import { confirmable, wireConfirm } from "../lib/confirm.js";
import { $, $$, field, h, setBar, setField, setText, statusClass, timeEl } from "../lib/dom.js";
import { fmt } from "../lib/format.js";
import { connectLive, reloadPage } from "../lib/live.js";
import { resultExplorer } from "../lib/results-explorer.js";
import { resultsTable } from "../lib/results-table.js";
import { simulationMap } from "../lib/simulation-map.js";

function workerName(a) { return a.workerLabel || a.workerHostname || a.machineId || a.workerId; }

function assignmentRow(a) {
  var progress = h("progress", { max: "100", "data-f": "progressBar", "aria-label": "Progress of assignment " + a.index });
  return h("tr", { "data-id": a.id }, [
    h("td", { class: "num", "data-f": "index", text: a.index }),
    h("td", null, [h("span", { class: statusClass(a.status), "data-f": "status", text: a.status })]),
    h("td", { "data-f": "worker" }),
    h("td", { class: "num", "data-f": "attempts" }),
    h("td", { class: "progress-col" }, [h("div", { class: "bar" }, [progress, h("span", { class: "num", "data-f": "progress" })])]),
    h("td", { "data-f": "stage" }),
    h("td", { "data-f": "started" }),
    h("td", { "data-f": "finished" }),
    h("td", { class: "num", "data-f": "duration" }),
    h("td", { class: "num", "data-f": "cost" }),
    h("td", null, [h("a", { class: "small", href: base + "/api/assignments/" + encodeURIComponent(a.id) + "/results/download", download: "", text: "zip" })]),
    canAdmin ? h("td", { class: "js-only", "data-f": "actions" }) : null
  ]);
}

var canAdmin = false;
var onAssignmentAction = null;

// Retry for FAILED or CANCELLED pieces, Requeue for RUNNING ones; rebuilt when the status changes.
function fillActions(row, a) {
  var cell = field(row, "actions");
  if (!cell || cell.dataset.status === a.status) return;
  cell.dataset.status = a.status;
  cell.textContent = "";
  var path = "/api/assignments/" + encodeURIComponent(a.id);
  if (a.status === "FAILED" || a.status === "CANCELLED") {
    cell.append(confirmable("Retry", "Retry #" + a.index + "?", "Yes, retry", function () {
      return onAssignmentAction(postJson(path + "/retry"), "Could not retry");
    }));
  } else if (a.status === "RUNNING") {
    cell.append(confirmable("Requeue", "Take #" + a.index + " from its worker and queue it again?", "Yes, requeue", function () {
      return onAssignmentAction(postJson(path + "/requeue"), "Could not requeue");
    }));
  }
}

function fillAssignment(row, a) {
  var status = field(row, "status");
  setText(status, a.status);
  status.className = statusClass(a.status);
  var worker = field(row, "worker");
  var name = a.workerId ? workerName(a) : "—";
  if (worker.dataset.name !== name + "|" + (a.workerId || "")) {
    worker.dataset.name = name + "|" + (a.workerId || "");
    worker.textContent = "";
    worker.append(a.workerId ? h("a", { href: base + "/workers/" + encodeURIComponent(a.workerId), text: name }) : "—");
  }
  setField(row, "attempts", a.attempts);
  setBar(row, "progressBar", a.progress);
  setField(row, "progress", fmt.pct(a.progress));
  setField(row, "stage", a.currentStage || "—");
  ["started", "finished"].forEach(function (key) {
    var iso = key === "started" ? a.startedAt : a.completedAt;
    var cell = field(row, key);
    if (cell.dataset.iso !== String(iso)) {
      cell.dataset.iso = String(iso);
      cell.textContent = "";
      cell.append(timeEl(iso));
    }
  });
  var duration = field(row, "duration");
  duration.dataset.since = a.startedAt || "";
  duration.dataset.until = a.completedAt || "";
  duration.toggleAttribute("data-frozen", a.status !== "RUNNING");
  setText(duration, a.startedAt ? fmt.elapsed(a.startedAt, a.completedAt) : "—");
  if (a.cost !== undefined) setField(row, "cost", fmt.money(a.cost, a.currency));
  fillActions(row, a);
}

function eventRow(e) {
  return h("tr", null, [
    h("td", null, [timeEl(e.at)]),
    h("td", { class: "num", text: e.index }),
    h("td", null, [h("span", { class: statusClass(e.from), text: e.from || "—" }), " → ", h("span", { class: statusClass(e.to), text: e.to })]),
    h("td", { text: e.actor }),
    h("td", { class: "wrap", text: e.reason || "" })
  ]);
}

function init(data) {
  var studyId = data.study.id;
  var summaryParts = ["#study-head", "#study-totals", "#study-master"].map(function (sel) { return $(sel); });
  var body = $("#assignments tbody");
  var rows = new Map();
  $$("tr[data-id]", body).forEach(function (row) { rows.set(row.dataset.id, row); });
  var explorer = resultExplorer(studyId);
  var map = simulationMap(studyId, explorer);
  var results = resultsTable(studyId);
  canAdmin = !!data.canAdmin;

  function applyStudy(study) {
    (study.assignments || []).forEach(function (a) { var row = rows.get(a.id); if (row) fillAssignment(row, a); });
    summaryParts.forEach(function (part) { fillStudy(part, study); });
    studyActions(study.status);
  }

  function studyActions(status) {
    var cancel = $('#study-actions [data-action="cancel"] [data-step="ask"]');
    if (cancel) cancel.disabled = !(status === "PENDING" || status === "RUNNING");
  }

  var actionMsg = $("#action-msg");
  function say(text, isError) {
    setText(actionMsg, text);
    if (actionMsg) actionMsg.classList.toggle("err", !!isError);
  }

  onAssignmentAction = function (request, what) {
    say("Working…");
    return request.then(function (study) { say("Done."); applyStudy(study); })
      .catch(function (error) { say(actionError(error, what), true); });
  };

  if (canAdmin) {
    data.assignments.forEach(function (a) { var row = rows.get(a.id); if (row) fillActions(row, a); });
    var path = "/api/super-studies/" + encodeURIComponent(studyId);
    var cancelWrap = $('#study-actions [data-action="cancel"]');
    var deleteWrap = $('#study-actions [data-action="delete"]');
    if (cancelWrap) {
      wireConfirm(cancelWrap, function () {
        return onAssignmentAction(postJson(path + "/cancel"), "Could not cancel the study");
      });
    }
    if (deleteWrap) {
      wireConfirm(deleteWrap, function () {
        say("Deleting…");
        return postJson(path, undefined, "DELETE").then(function () {
          window.location.href = base + "/super-studies";
        }).catch(function (error) { say(actionError(error, "Could not delete the study"), true); });
      });
    }
  }

  connectLive({
    study: function (s) {
      if (s.id !== studyId) return;
      if (s.deleted) {
        setText($("#study-head .muted") || $("#study-head h1"), "This super study was deleted.");
        return;
      }
      summaryParts.forEach(function (part) { fillStudy(part, s); });
      studyActions(s.status);
      map.reload();
    },
    assignments: function (d) {
      if (d.id !== studyId) return;
      map.reload();
      d.assignments.forEach(function (a) {
        var row = rows.get(a.id);
        if (!row) {
          row = assignmentRow(a);
          rows.set(a.id, row);
          body.append(row);
        }
        fillAssignment(row, a);
      });
      var events = $("#events tbody");
      if (String(d.eventCount) !== $("#event-count").textContent) {
        events.textContent = "";
        d.events.slice().reverse().forEach(function (e) { events.append(eventRow(e)); });
        setText($("#event-count"), d.eventCount);
      }
    },
    results: function (d) {
      if (d.id !== studyId) return;
      explorer.reload();
      map.reload();
      results.reload();
    },
    resync: reloadPage
  });
}

startPage(init);
