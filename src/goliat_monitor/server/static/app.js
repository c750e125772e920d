/* goliat-monitor dashboard: what every page shares, started by that page's own module.
 *
 * Hand-written ES modules, no dependencies, no bundler. The server renders every page; the page
 * modules in pages/ keep it live from one EventSource (GET /api/events) and never poll on a
 * timer. All imports are relative, so they resolve under the same versioned URL as the page's
 * module (/static/<version>/...) and an upgrade never mixes old and new files.
 */
import { $, $$, setText } from "./lib/dom.js";
import { fmt } from "./lib/format.js";

const doc = document;
const root = doc.documentElement;
const THEME_KEY = "goliat-monitor-theme"; // boot.js reads it before the first paint

// Relative times ("12s ago", ETA countdowns, elapsed) advance with the local clock; only the
// text changes, the server is not asked anything.
function tickClocks() {
  $$("[data-ago]").forEach(function (n) { if (n.dataset.ago) setText(n, fmt.ago(n.dataset.ago)); });
  $$("[data-eta]").forEach(function (n) { setText(n, fmt.until(n.dataset.eta)); });
  $$("[data-since]").forEach(function (n) {
    if (n.hasAttribute("data-frozen") && !n.dataset.until) return;
    if (n.dataset.since) setText(n, fmt.elapsed(n.dataset.since, n.dataset.until));
  });
}

function localizeTimes(scope) {
  $$("time[data-fmt]", scope).forEach(function (n) {
    var f = fmt[n.dataset.fmt];
    if (f) setText(n, f(n.getAttribute("datetime")));
  });
}

function setupTheme() {
  var button = $("#theme-toggle");
  if (!button) return;
  button.hidden = false;
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  function current() { return root.getAttribute("data-theme") || (media && media.matches ? "dark" : "light"); }
  function label() { button.setAttribute("aria-pressed", current() === "dark" ? "true" : "false"); }
  button.addEventListener("click", function () {
    var next = current() === "dark" ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try { localStorage.setItem(THEME_KEY, next); } catch (e) { /* not saved */ }
    label();
  });
  label();
}

// "/" jumps to the page's search box.
function shortcuts() {
  doc.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable) return;
    var target = $("[data-shortcut='/']");
    if (target) { event.preventDefault(); target.focus(); }
  });
}

/** Set up what every page has, run the page's own `init` with its embedded data, start the clocks. */
export function startPage(init) {
  setupTheme();
  shortcuts();
  localizeTimes(doc);
  var dataEl = $("#page-data");
  if (init) init(dataEl ? JSON.parse(dataEl.textContent) : {});
  tickClocks();
  setInterval(tickClocks, 1000);
}
