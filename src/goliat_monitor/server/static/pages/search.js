/* The log search page: every worker's lines containing a text, newest first, each linking to the
 * line in its worker's log. The server renders the first page; this module searches again as the
 * filters change and loads older hits. Log text only ever reaches the page as text nodes. */
import { startPage } from "../app.js";
import { api, base } from "../lib/api.js";
import { $, $$, h, setText } from "../lib/dom.js";
import { fmt, stripAnsi } from "../lib/format.js";

const MIN_CHARS = 3;

/* A-Z folded, nothing else: what the server's search matches (see docs/architecture.md). */
function foldAscii(text) { return text.replace(/[A-Z]/g, function (c) { return c.toLowerCase(); }); }

function fillMessage(node, text, needle) {
  var folded = foldAscii(text), want = foldAscii(needle), at = 0;
  for (;;) {
    var hit = want ? folded.indexOf(want, at) : -1;
    if (hit < 0) break;
    if (hit > at) node.append(text.slice(at, hit));
    node.append(h("mark", { text: text.slice(hit, hit + want.length) }));
    at = hit + want.length;
  }
  if (at < text.length) node.append(text.slice(at));
}

function hitRow(hit, needle) {
  var message = h("span", { class: "hit-msg lt-" + hit.logType });
  fillMessage(message, stripAnsi(hit.message), needle);
  var href = base + "/workers/" + encodeURIComponent(hit.workerId) + "?line=" + encodeURIComponent(hit.cursor) + "#log-panel";
  return h("li", { class: "hit-row" }, [
    h("a", { class: "hit-link", href: href }, [
      h("span", { class: "hit-worker", text: hit.workerName || hit.machineId || hit.workerId }),
      h("time", { class: "hit-time", datetime: hit.timestamp || "", text: fmt.datetime(hit.timestamp) }),
      h("span", { class: "hit-type lt-" + hit.logType, text: hit.logType }),
      message
    ])
  ]);
}

function init(data) {
  var form = $("#search-form");
  var input = $("#search-q");
  var studySelect = $("#search-study");
  var boxes = $$("#search-types input[type=checkbox]");
  var list = $("#search-hits");
  var state = $("#search-state");
  var more = $("#search-more");
  var generation = 0, shown = 0, needle = data.q || "";

  function chosenTypes() {
    var chosen = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
    return chosen.length === boxes.length ? [] : chosen;
  }

  function params(before) {
    var p = new URLSearchParams();
    p.set("q", input.value);
    chosenTypes().forEach(function (t) { p.append("type", t); });
    if (studySelect.value) p.set("study", studySelect.value);
    if (before) p.set("before", before);
    return p;
  }

  function summary() {
    return shown ? shown + " matching line" + (shown === 1 ? "" : "s") : "No line contains “" + needle + "”.";
  }

  function renderMore(nextBefore) {
    more.textContent = "";
    if (!nextBefore) return;
    var button = h("button", { type: "button", class: "link", id: "search-older", text: "Older matches" });
    button.addEventListener("click", function () { load(nextBefore); });
    more.append(button);
  }

  function load(before) {
    var gen = before ? generation : ++generation;
    var p = params(before);
    if (!before) {
      needle = input.value;
      history.replaceState(null, "", base + "/search?" + p.toString());
    }
    setText(state, "Searching…");
    api("/api/logs?" + p.toString()).then(function (page) {
      if (gen !== generation) return;
      if (!before) { list.textContent = ""; shown = 0; }
      page.logs.forEach(function (hit) { list.append(hitRow(hit, needle)); });
      shown += page.logs.length;
      setText(state, summary() + (page.nextBefore ? "; older ones below" : ""));
      renderMore(page.nextBefore);
    }).catch(function (error) {
      if (gen === generation) setText(state, "Could not search: " + error.message);
    });
  }

  function search() {
    if (input.value.trim().length === 0) { setText(state, ""); return; }
    if (input.value.length < MIN_CHARS) {
      setText(state, "Type at least " + MIN_CHARS + " characters: shorter text cannot use the log index.");
      return;
    }
    if (boxes.every(function (b) { return !b.checked; })) {
      ++generation;
      list.textContent = "";
      more.textContent = "";
      setText(state, "Choose at least one log type.");
      return;
    }
    load(null);
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); search(); });
  studySelect.addEventListener("change", search);
  boxes.forEach(function (b) { b.addEventListener("change", search); });

  // The server rendered the first page: mark the text in it, and page on without reloading.
  shown = list.childElementCount;
  if (needle) {
    $$(".hit-msg", list).forEach(function (node) {
      var text = node.textContent;
      node.textContent = "";
      fillMessage(node, text, needle);
    });
  }
  var older = $("#search-older");
  if (older) renderMore(older.dataset.before);
  if (!data.q) input.focus();
}

startPage(init);
