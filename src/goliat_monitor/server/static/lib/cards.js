/* Worker and study cards, filled from live data the way the templates' macros render them. */
import { base } from "./api.js";
import { $$, field, setBar, setField, setText, statusClass } from "./dom.js";
import { fmt } from "./format.js";

export function statusText(w) {
  if (w.isStale) return "Stale session";
  if (w.stalled) return "Stalled";
  if (w.status === "RUNNING") return "Running";
  if (w.status === "IDLE") return "Idle";
  if (w.status === "ERROR") return "Error";
  return "Offline";
}

function subText(w) {
  var parts = [w.hostname !== w.displayName ? w.hostname : null, w.machineId !== w.displayName ? w.machineId : null];
  return parts.filter(Boolean).join(" · ") || "—";
}

export function stageText(g) {
  if (!g || !g.stage) return "—";
  return g.subStage ? g.stage + " · " + g.subStage : g.stage;
}

export function fillWorkerCard(card, w) {
  var g = w.guiState || {};
  card.dataset.id = w.id;
  card.dataset.light = w.light;
  card.dataset.status = w.status;
  card.toggleAttribute("data-stale", !!w.isStale);
  var link = field(card, "link");
  setText(link, w.displayName);
  link.setAttribute("href", base + "/workers/" + encodeURIComponent(w.id));
  setField(card, "statusText", statusText(w));
  setField(card, "sub", subText(w));
  setField(card, "gpu", w.gpuName || "GPU unknown");
  setBar(card, "progressBar", g.progress);
  setField(card, "progress", fmt.pct(g.progress));
  setField(card, "stage", stageText(g));
  var eta = field(card, "eta");
  eta.dataset.eta = g.eta || "";
  setText(eta, fmt.until(g.eta));
  setField(card, "warnings", g.warningCount || 0);
  setField(card, "errors", g.errorCount || 0);
  var seen = field(card, "seen");
  seen.dataset.ago = w.lastSeen || "";
  setText(seen, fmt.ago(w.lastSeen));
  fillWorkerCost(card, w);
}

/** A worker's busy and idle hours and cost, wherever the page shows them. */
export function fillWorkerCost(scope, w) {
  if (w.cost === undefined) return;
  setField(scope, "cost", fmt.money(w.cost, w.currency));
  setField(scope, "idleCost", fmt.money(w.idleCost, w.currency));
  setField(scope, "gpuHours", fmt.hours(w.gpuHours));
  setField(scope, "idleHours", fmt.hours(w.idleHours));
}

export function fillStudy(scope, s) {
  var link = field(scope, "link");
  if (link) {
    setText(link, s.name);
    link.setAttribute("href", base + "/super-studies/" + encodeURIComponent(s.id));
  }
  $$('[data-f="status"]', scope).forEach(function (n) {
    setText(n, s.status);
    n.className = statusClass(s.status) + (n.classList.contains("big") ? " big" : "");
  });
  setBar(scope, "progressBar", s.masterProgress);
  setField(scope, "progress", fmt.pct(s.masterProgress));
  setField(scope, "completed", s.completedAssignments || 0);
  setField(scope, "running", s.runningAssignments || 0);
  setField(scope, "pending", s.pendingAssignments || 0);
  setField(scope, "failed", s.failedAssignments || 0);
  setField(scope, "cancelled", s.cancelledAssignments || 0);
  setField(scope, "total", s.totalAssignments || 0);
  $$('[data-f="eta"]', scope).forEach(function (n) {
    n.dataset.eta = s.eta || "";
    setText(n, fmt.until(s.eta));
  });
  if (s.cost !== undefined) {
    setField(scope, "cost", fmt.money(s.cost, s.currency));
    setField(scope, "gpuHours", fmt.hours(s.gpuHours));
    setField(scope, "projectedCost", fmt.money(s.projectedCost, s.currency));
  }
}
