/* The worker page's log console: live tail, paging back, search, type filters and pause. */
import { api, base } from "./api.js";
import { $, $$, h, setText, throttle } from "./dom.js";
import { fmt, stripAnsi } from "./format.js";

const doc = document;

function cursorKey(cursor) {
  var parts = String(cursor).split(".");
  try { return [BigInt(parts[0]), BigInt(parts[1] || 0)]; } catch (e) { return [BigInt(0), BigInt(0)]; }
}
function compareCursor(a, b) {
  var ka = cursorKey(a), kb = cursorKey(b);
  if (ka[0] !== kb[0]) return ka[0] < kb[0] ? -1 : 1;
  if (ka[1] !== kb[1]) return ka[1] < kb[1] ? -1 : 1;
  return 0;
}

const MIN_QUERY = 3; // the server's log index cannot narrow shorter text, so it refuses it

/* A-Z folded, nothing else: what the server's search matches, so live lines filter the same way. */
function foldAscii(text) { return String(text).replace(/[A-Z]/g, function (c) { return c.toLowerCase(); }); }

export function logConsole(workerId, historyMode) {
  var box = $("#log");
  var list = $("#log-lines");
  var top = $("#log-top");
  var stateEl = $("#log-state");
  var jump = $("#log-jump");
  var pauseButton = $("#log-pause");
  var search = $("#log-search");
  var typeBoxes = $$("#log-types input[type=checkbox]");
  var logTypes = typeBoxes.map(function (b) { return b.value; }); // the server renders one box per type
  var MAX_LINES = 4000;
  var seen = new Set();
  var olderLink = $("#log-older");
  var olderCursor = olderLink ? olderLink.dataset.before : null;
  var paused = historyMode, pending = [], loading = false, generation = 0;
  var query = { q: "", types: null };

  $$(".ll", list).forEach(function (row) { seen.add(row.dataset.c); });
  $$(".ll time.ts", list).forEach(function (n) { setText(n, fmt.clock(n.getAttribute("datetime"))); });
  var emptyNote = $("#log-empty");

  function atBottom() { return box.scrollHeight - box.scrollTop - box.clientHeight < 24; }
  function toBottom() { box.scrollTop = box.scrollHeight; }

  function fillMessage(node, text) {
    node.textContent = "";
    if (!query.q) { node.textContent = text; return; }
    var lower = foldAscii(text), needle = foldAscii(query.q), at = 0;
    for (;;) {
      var hit = lower.indexOf(needle, at);
      if (hit < 0) break;
      if (hit > at) node.append(text.slice(at, hit));
      node.append(h("mark", { text: text.slice(hit, hit + needle.length) }));
      at = hit + needle.length;
    }
    if (at < text.length) node.append(text.slice(at));
  }

  function lineEl(line) {
    var type = logTypes.indexOf(line.logType) >= 0 ? line.logType : "default";
    var row = h("div", { class: "ll lt-" + type, "data-c": line.cursor });
    var ts = h("time", { class: "ts", datetime: line.timestamp || "", text: fmt.clock(line.timestamp) });
    var msg = h("span", { class: "msg" });
    fillMessage(msg, stripAnsi(line.message));
    row.append(ts, msg);
    return row;
  }

  function matches(line) {
    if (query.types && query.types.indexOf(line.logType) < 0) return false;
    return !query.q || foldAscii(line.message).indexOf(foldAscii(query.q)) >= 0;
  }

  function insert(lines) {
    var follow = atBottom();
    lines.forEach(function (line) {
      if (seen.has(line.cursor) || !matches(line)) return;
      seen.add(line.cursor);
      var ref = null, node = list.lastElementChild;
      while (node && compareCursor(node.dataset.c, line.cursor) > 0) { ref = node; node = node.previousElementSibling; }
      list.insertBefore(lineEl(line), ref);
    });
    if (emptyNote && list.firstElementChild) emptyNote.hidden = true;
    if (follow) {
      trim();
      toBottom();
    }
    render();
  }

  function trim() {
    var extra = list.childElementCount - MAX_LINES;
    if (extra <= 0) return;
    for (var i = 0; i < extra; i++) {
      var first = list.firstElementChild;
      seen.delete(first.dataset.c);
      first.remove();
    }
    olderCursor = list.firstElementChild ? list.firstElementChild.dataset.c : olderCursor;
    renderTop(true);
  }

  function renderTop(hasOlder) {
    top.textContent = "";
    if (hasOlder && olderCursor) {
      var more = h("button", { type: "button", class: "link", id: "log-older", text: "Load older lines" });
      more.addEventListener("click", loadOlder);
      top.append(more);
    } else {
      top.append(h("span", { class: "start", text: query.q || query.types ? "No older matches" : "Start of log" }));
    }
    if (historyMode) {
      top.append(" · ", h("a", { href: base + "/workers/" + encodeURIComponent(workerId) + "#log-panel", text: "Back to the live tail" }));
    }
  }

  function render() {
    var text;
    if (historyMode) text = "Viewing older lines; live lines are not added here.";
    else if (paused) text = pending.length ? "Paused — " + pending.length + " new line" + (pending.length === 1 ? "" : "s") + " waiting" : "Paused";
    else if (query.q || query.types) text = "Live, filtered";
    else text = atBottom() ? "Following live" : "Scrolled up — live lines keep arriving below";
    setText(stateEl, text);
    jump.hidden = historyMode || atBottom();
    if (pauseButton) {
      setText(pauseButton, paused && !historyMode ? "Resume" : "Pause");
      pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
      pauseButton.disabled = historyMode;
    }
  }

  function params() {
    var p = new URLSearchParams();
    if (query.q) p.set("q", query.q);
    (query.types || []).forEach(function (t) { p.append("type", t); });
    return p;
  }

  function loadOlder() {
    if (!olderCursor || loading) return;
    loading = true;
    var gen = generation;
    var p = params();
    p.set("before", olderCursor);
    p.set("limit", "200");
    api("/api/workers/" + encodeURIComponent(workerId) + "/logs?" + p.toString()).then(function (page) {
      if (gen !== generation) return;
      var height = box.scrollHeight, scrolled = box.scrollTop;
      var frag = doc.createDocumentFragment();
      page.logs.forEach(function (line) {
        if (seen.has(line.cursor)) return;
        seen.add(line.cursor);
        frag.append(lineEl(line));
      });
      list.insertBefore(frag, list.firstChild);
      box.scrollTop = scrolled + (box.scrollHeight - height);
      olderCursor = page.nextBefore;
      renderTop(!!olderCursor);
    }).catch(function (error) {
      setText(stateEl, "Could not load older lines: " + error.message);
    }).then(function () { loading = false; });
  }

  function reload() {
    var gen = ++generation;
    if (query.types && !query.types.length) {
      list.textContent = "";
      seen.clear();
      olderCursor = null;
      renderTop(false);
      render();
      return;
    }
    var p = params();
    p.set("limit", "300");
    setText(stateEl, "Loading…");
    api("/api/workers/" + encodeURIComponent(workerId) + "/logs?" + p.toString()).then(function (page) {
      if (gen !== generation) return;
      list.textContent = "";
      seen.clear();
      pending = [];
      historyMode = false;
      insert(page.logs);
      olderCursor = page.nextBefore;
      renderTop(!!olderCursor);
      toBottom();
      render();
    }).catch(function (error) { setText(stateEl, "Could not load the log: " + error.message); });
  }

  function setPaused(value) {
    paused = value;
    if (!paused && pending.length) {
      var waiting = pending;
      pending = [];
      insert(waiting);
      toBottom();
    }
    render();
  }

  var searchTimer = null;
  if (search) {
    search.addEventListener("input", function () {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(function () {
        var text = search.value.trim();
        if (text && text.length < MIN_QUERY) {
          setText(stateEl, "Type at least " + MIN_QUERY + " characters to search the whole log.");
          return;
        }
        query.q = text;
        reload();
      }, 250);
    });
  }
  typeBoxes.forEach(function (boxInput) {
    boxInput.addEventListener("change", function () {
      var chosen = typeBoxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      query.types = chosen.length === typeBoxes.length ? null : chosen;
      reload();
    });
  });
  if (pauseButton) pauseButton.addEventListener("click", function () { setPaused(!paused); });
  jump.addEventListener("click", function () {
    if (paused) setPaused(false);
    toBottom();
    render();
  });
  box.addEventListener("scroll", throttle(render, 150));
  box.addEventListener("keydown", function (event) {
    if (event.key === "p" && !event.ctrlKey && !event.metaKey && !event.altKey) { setPaused(!paused); event.preventDefault(); }
  });
  if (olderLink) {
    olderLink.addEventListener("click", function (event) { event.preventDefault(); loadOlder(); });
  }
  if (historyMode) {
    renderTop(!!olderCursor);
  }
  toBottom();
  // A search hit opened here (`?line=`): the server marked its line; bring it to the middle.
  var hit = $("#log-hit", list);
  if (hit) {
    box.scrollTop += hit.getBoundingClientRect().top - box.getBoundingClientRect().top - (box.clientHeight - hit.offsetHeight) / 2;
    hit.scrollIntoView({ block: "nearest" });
  }
  render();

  return {
    add: function (lines) {
      if (historyMode) return;
      if (paused) {
        lines.forEach(function (line) { if (!seen.has(line.cursor)) pending.push(line); });
        if (pending.length > MAX_LINES) pending = pending.slice(-MAX_LINES);
        render();
        return;
      }
      insert(lines);
    },
    busy: function () { return paused || historyMode || !!query.q || !!query.types || !atBottom(); }
  };
}
