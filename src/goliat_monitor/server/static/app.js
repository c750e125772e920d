/* goliat-monitor dashboard: live updates, the log console, charts and the result explorer.
 *
 * Hand-written, no dependencies. The server renders every page; this script keeps it live from
 * one EventSource (GET /api/events) and never polls on a timer. Data only ever reaches the page
 * through textContent and attributes, never innerHTML, so a log line such as
 * <img src=x onerror=alert(1)> is shown as text.
 */
(function () {
  "use strict";

  var doc = document;
  var root = doc.documentElement;
  var THEME_KEY = "goliat-monitor-theme";
  root.classList.add("js");
  try {
    var saved = localStorage.getItem(THEME_KEY);
    if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);
  } catch (e) {
    /* storage blocked: follow the system theme */
  }

  var LOG_TYPES = ["default", "progress", "info", "verbose", "warning", "error", "fatal", "success", "header", "highlight"];
  var base = "";
  var skewMs = 0; // server clock minus browser clock

  // ---- small helpers ---------------------------------------------------------------------

  function $(sel, scope) { return (scope || doc).querySelector(sel); }
  function $$(sel, scope) { return Array.prototype.slice.call((scope || doc).querySelectorAll(sel)); }

  function h(tag, props, children) {
    var node = doc.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = String(value);
        else if (key === "class") node.className = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) node.append(child);
    });
    return node;
  }

  function setText(node, text) {
    text = text === null || text === undefined ? "" : String(text);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function field(scope, name) { return scope.querySelector('[data-f="' + name + '"]'); }
  function setField(scope, name, text) { $$('[data-f="' + name + '"]', scope).forEach(function (n) { setText(n, text); }); }
  function setBar(scope, name, value) {
    var bar = field(scope, name);
    if (bar) bar.value = value || 0;
  }

  function serverNow() { return Date.now() + skewMs; }
  function parseTime(iso) { var t = iso ? Date.parse(iso) : NaN; return isNaN(t) ? null : t; }
  function pad(n) { return n < 10 ? "0" + n : String(n); }

  var fmt = {
    pct: function (v) { return v === null || v === undefined ? "—" : Number(v).toFixed(1) + "%"; },
    duration: function (seconds) {
      if (seconds === null || seconds === undefined || seconds < 0 || isNaN(seconds)) return "—";
      var s = Math.floor(seconds);
      if (s < 60) return s + "s";
      if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
      if (s < 86400) return Math.floor(s / 3600) + "h " + pad(Math.floor((s % 3600) / 60)) + "m";
      return Math.floor(s / 86400) + "d " + pad(Math.floor((s % 86400) / 3600)) + "h";
    },
    ago: function (iso) {
      var t = parseTime(iso);
      if (t === null) return "never";
      var d = Math.max(0, (serverNow() - t) / 1000);
      return d < 2 ? "just now" : fmt.duration(d) + " ago";
    },
    until: function (iso) {
      var t = parseTime(iso);
      return t === null ? "—" : fmt.duration(Math.max(0, (t - serverNow()) / 1000));
    },
    elapsed: function (since, until) {
      var a = parseTime(since);
      if (a === null) return "—";
      var b = parseTime(until);
      return fmt.duration(Math.max(0, ((b === null ? serverNow() : b) - a) / 1000));
    },
    clock: function (iso) {
      var t = parseTime(iso);
      if (t === null) return "";
      var d = new Date(t);
      return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    },
    datetime: function (iso) {
      var t = parseTime(iso);
      if (t === null) return "—";
      var d = new Date(t);
      return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + fmt.clock(iso);
    },
    size: function (n) {
      if (n === null || n === undefined) return "—";
      var units = ["B", "KB", "MB", "GB"];
      var v = Number(n);
      for (var i = 0; i < units.length; i++) {
        if (v < 1024 || i === units.length - 1) return i === 0 ? v.toFixed(0) + " B" : v.toFixed(1) + " " + units[i];
        v /= 1024;
      }
      return v.toFixed(1) + " GB";
    }
  };

  var ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
  function stripAnsi(text) { return String(text === null || text === undefined ? "" : text).replace(ANSI, ""); }

  function api(path, options) {
    return fetch(base + path, Object.assign({ headers: { Accept: "application/json" }, credentials: "same-origin" }, options || {}))
      .then(function (response) {
        if (!response.ok) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            var error = new Error(body.error || response.status + " " + response.statusText);
            error.status = response.status;
            throw error;
          });
        }
        return response.json();
      });
  }

  function postJson(path, body, method) {
    return api(path, {
      method: method || "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
  }

  var ADMIN_NEEDED = "An admin token is required: open the dashboard under /t/<admin token>/.";

  function actionError(error, what) {
    return error.status === 401 ? ADMIN_NEEDED : what + ": " + error.message;
  }

  // A button that asks before it acts: "Delete" becomes "Delete …? [Yes] [No]" in place.
  function confirmable(label, question, yesLabel, run, className) {
    var wrap = h("span", { class: "confirmable" });
    var ask = h("button", { type: "button", class: className || "secondary small", "data-step": "ask", text: label });
    var yes = h("button", { type: "button", class: "danger small", "data-step": "yes", text: yesLabel });
    var no = h("button", { type: "button", class: "link", "data-step": "no", text: "No" });
    wrap.append(ask, h("span", { class: "confirm", "data-step": "confirm", hidden: true }, [question + " ", yes, " ", no]));
    wireConfirm(wrap, run);
    return wrap;
  }

  function wireConfirm(wrap, run) {
    var ask = $('[data-step="ask"]', wrap);
    var box = $('[data-step="confirm"]', wrap);
    var yes = $('[data-step="yes"]', wrap);
    function show(confirming) { ask.hidden = confirming; box.hidden = !confirming; }
    ask.addEventListener("click", function () { show(true); yes.focus(); });
    $('[data-step="no"]', wrap).addEventListener("click", function () { show(false); ask.focus(); });
    yes.addEventListener("click", function () {
      yes.disabled = true;
      Promise.resolve(run()).then(function () { yes.disabled = false; show(false); }, function () { yes.disabled = false; show(false); });
    });
  }

  function timeEl(iso, kind) {
    if (!iso) return doc.createTextNode("—");
    return h("time", { datetime: iso, "data-fmt": kind || "datetime", text: (fmt[kind || "datetime"])(iso) });
  }

  function throttle(fn, ms) {
    var last = 0, timer = null;
    return function () {
      var wait = last + ms - Date.now();
      if (wait <= 0) { last = Date.now(); fn(); return; }
      if (!timer) timer = setTimeout(function () { timer = null; last = Date.now(); fn(); }, wait);
    };
  }

  function statusClass(status) { return "pill status-" + String(status || "none").toLowerCase(); }

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

  // ---- theme ---------------------------------------------------------------------------------

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

  // ---- the live connection ---------------------------------------------------------------------

  /* One EventSource per page. The browser reconnects by itself and sends Last-Event-ID; if it
   * gives up (HTTP error), we open a new one with the last id in the URL, backing off. */
  function connectLive(handlers) {
    var badge = $("#live-status");
    var query = doc.body.dataset.events || "";
    var lastId = doc.body.dataset.eventId || "";
    var source = null, attempt = 0, timer = null;

    function show(state, text) {
      if (!badge) return;
      badge.hidden = false;
      badge.dataset.state = state;
      setText(badge, text);
      doc.body.dataset.live = state;
    }

    function listen(name, fn) {
      source.addEventListener(name, function (event) {
        if (event.lastEventId) lastId = event.lastEventId;
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        fn(data);
      });
    }

    function open() {
      var params = new URLSearchParams(query);
      if (lastId) params.set("lastEventId", lastId);
      source = new EventSource(base + "/api/events?" + params.toString());
      show("connecting", attempt ? "Reconnecting…" : "Connecting…");
      source.addEventListener("error", function () {
        if (source.readyState === EventSource.CLOSED) {
          show("down", "Offline — retrying");
          source.close();
          clearTimeout(timer);
          timer = setTimeout(open, Math.min(30000, 1000 * Math.pow(2, attempt++)));
        } else {
          show("down", "Connection lost — reconnecting…");
        }
      });
      listen("hello", function (data) {
        attempt = 0;
        if (typeof data.serverTime === "number") skewMs = data.serverTime * 1000 - Date.now();
        show("live", "Live");
        if (handlers.hello) handlers.hello(data);
      });
      Object.keys(handlers).forEach(function (name) {
        if (name !== "hello") listen(name, handlers[name]);
      });
    }

    open();
    window.addEventListener("pagehide", function () { if (source) source.close(); });
    window.addEventListener("pageshow", function (event) { if (event.persisted) open(); });
  }

  function reloadPage() { window.location.reload(); }

  // ---- worker cards (overview) ------------------------------------------------------------------

  function statusText(w) {
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

  function stageText(g) {
    if (!g || !g.stage) return "—";
    return g.subStage ? g.stage + " · " + g.subStage : g.stage;
  }

  function fillWorkerCard(card, w) {
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
  }

  function fillStudy(scope, s) {
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
  }

  /* Which workers a filter or search shows, the order of each sort and the totals are decided on
   * the server (server/overview.py): every worker arrives with its `overview` facets, and the page
   * only matches and compares them, so a live update never disagrees with a reload. */

  /** Code-point order, as Python orders str (JavaScript's `<` compares UTF-16 code units). */
  function compareText(a, b) {
    var x = Array.from(a), y = Array.from(b);
    for (var i = 0; i < x.length && i < y.length; i++) {
      var step = x[i].codePointAt(0) - y[i].codePointAt(0);
      if (step) return step;
    }
    return x.length - y.length;
  }

  /** Python's order of two sort keys: lists of numbers and strings, compared item by item. */
  function compareKeys(a, b) {
    for (var i = 0; i < a.length && i < b.length; i++) {
      if (a[i] === b[i]) continue;
      if (typeof a[i] === "string") return compareText(a[i], b[i]);
      return a[i] < b[i] ? -1 : 1;
    }
    return a.length - b.length;
  }

  function overviewPage(data) {
    var workers = new Map();
    data.workers.forEach(function (w) { workers.set(w.id, w); });
    var container = $("#workers");
    var cards = new Map();
    $$(".card.worker", container).forEach(function (card) { cards.set(card.dataset.id, card); });
    var template = $("#worker-card-template");
    var form = $("#worker-filters");
    var empty = $("#workers-empty");
    var studies = $("#active-studies");
    var studyCards = new Map();
    $$(".card.study", studies).forEach(function (card) { studyCards.set(card.dataset.id, card); });

    function filters() {
      return {
        status: form.elements.status.value,
        q: form.elements.q.value.trim().toLowerCase(),
        sort: form.elements.sort.value
      };
    }

    function visible(w, f) {
      var facets = w.overview;
      if (facets.statuses.indexOf(f.status) < 0) return false;
      return !f.q || facets.search.some(function (text) { return text.indexOf(f.q) >= 0; });
    }

    function byOrder(f) {
      return function (a, b) { return compareKeys(a.overview.sort[f.sort], b.overview.sort[f.sort]); };
    }

    function totals() {
      $$("[data-total]").forEach(function (node) {
        var sum = 0;
        workers.forEach(function (w) { sum += w.overview.totals[node.dataset.total]; });
        setText(node, sum);
      });
    }

    function arrange() {
      var f = filters();
      var list = Array.from(workers.values()).filter(function (w) { return cards.has(w.id); });
      list.sort(byOrder(f));
      var shown = 0;
      list.forEach(function (w) {
        var on = visible(w, f);
        cards.get(w.id).hidden = !on;
        if (on) shown++;
      });
      var order = list.map(function (w) { return cards.get(w.id); });
      var current = Array.prototype.slice.call(container.children);
      if (order.some(function (card, i) { return current[i] !== card; })) {
        order.forEach(function (card) { container.appendChild(card); });
      }
      empty.hidden = shown > 0;
      if (!shown) setText(empty, workers.size ? "No worker matches these filters." : empty.textContent);
    }

    function update(w) {
      workers.set(w.id, w);
      var card = cards.get(w.id);
      if (w.isStale && !data.showStale) {
        if (card) { card.remove(); cards.delete(w.id); }
        workers.delete(w.id);
      } else {
        if (!card) {
          card = template.content.firstElementChild.cloneNode(true);
          cards.set(w.id, card);
          container.appendChild(card);
        }
        fillWorkerCard(card, w);
      }
    }

    var rearrange = throttle(function () { totals(); arrange(); }, 250);

    function updateStudy(s) {
      var card = studyCards.get(s.id);
      var active = !s.deleted && (s.status === "RUNNING" || s.status === "PENDING");
      if (!active) {
        if (card) { card.remove(); studyCards.delete(s.id); }
      } else {
        if (!card) {
          card = $("#study-card-template").content.firstElementChild.cloneNode(true);
          card.dataset.id = s.id;
          studyCards.set(s.id, card);
          studies.prepend(card);
        }
        card.dataset.status = s.status;
        fillStudy(card, s);
      }
      $("#studies-empty").hidden = studyCards.size > 0;
    }

    form.addEventListener("submit", function (event) { event.preventDefault(); arrange(); });
    form.addEventListener("input", function (event) {
      if (event.target.hasAttribute("data-reload")) return;
      var f = filters();
      var url = new URL(window.location.href);
      ["status", "q", "sort"].forEach(function (k) {
        var v = k === "q" ? form.elements.q.value.trim() : f[k];
        var dflt = k === "status" ? "all" : k === "sort" ? "status" : "";
        if (v && v !== dflt) url.searchParams.set(k, v); else url.searchParams.delete(k);
      });
      history.replaceState(null, "", url);
      arrange();
    });
    form.addEventListener("change", function (event) {
      if (event.target.hasAttribute("data-reload")) form.submit();
    });

    totals();
    arrange();
    connectLive({
      worker: function (w) { update(w); rearrange(); },
      study: updateStudy,
      resync: reloadPage
    });
  }

  // ---- the log console (worker page) --------------------------------------------------------------

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

  function logConsole(workerId, historyMode) {
    var box = $("#log");
    var list = $("#log-lines");
    var top = $("#log-top");
    var stateEl = $("#log-state");
    var jump = $("#log-jump");
    var pauseButton = $("#log-pause");
    var search = $("#log-search");
    var typeBoxes = $$("#log-types input[type=checkbox]");
    var MAX_LINES = 4000;
    var seen = new Set();
    var olderLink = $("#log-older");
    var olderCursor = olderLink ? olderLink.dataset.before : null;
    var paused = historyMode, pending = [], loading = false, generation = 0;
    var query = { q: "", types: null };

    $$(".ll", list).forEach(function (row) { seen.add(row.dataset.c); });
    var emptyNote = $("#log-empty");

    function atBottom() { return box.scrollHeight - box.scrollTop - box.clientHeight < 24; }
    function toBottom() { box.scrollTop = box.scrollHeight; }

    function fillMessage(node, text) {
      node.textContent = "";
      if (!query.q) { node.textContent = text; return; }
      var lower = text.toLowerCase(), needle = query.q.toLowerCase(), at = 0;
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
      var type = LOG_TYPES.indexOf(line.logType) >= 0 ? line.logType : "default";
      var row = h("div", { class: "ll lt-" + type, "data-c": line.cursor });
      var ts = h("time", { class: "ts", datetime: line.timestamp || "", text: fmt.clock(line.timestamp) });
      var msg = h("span", { class: "msg" });
      fillMessage(msg, stripAnsi(line.message));
      row.append(ts, msg);
      return row;
    }

    function matches(line) {
      if (query.types && query.types.indexOf(line.logType) < 0) return false;
      return !query.q || String(line.message).toLowerCase().indexOf(query.q.toLowerCase()) >= 0;
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
          query.q = search.value.trim();
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

  // ---- charts: small hand-made SVG line charts -------------------------------------------------------

  var SVG_NS = "http://www.w3.org/2000/svg";
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
  function drawChart(svg, legend, series, points, options) {
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

  function workerCharts(workerId) {
    var range = $("#chart-range");
    var points = [];
    var minutes = Number(range ? range.value : 60);

    function draw() {
      drawChart($("#chart-progress"), $("#legend-progress"), [
        { key: "progress", label: "Overall", cls: "c1" },
        { key: "stageProgress", label: "Stage", cls: "c2" }
      ], points, { minutes: minutes, yMax: 100, unit: "%", axisUnit: "%" });
      drawChart($("#chart-util"), $("#legend-util"), [
        { key: "cpuPercent", label: "CPU", cls: "c1" },
        { key: "ramPercent", label: "RAM", cls: "c3" },
        { key: "gpuPercent", label: "GPU", cls: "c4" }
      ], points, { minutes: minutes, yMax: 100, unit: "%", axisUnit: "%" });
      drawChart($("#chart-vram"), $("#legend-vram"), [
        { key: "vramUsedGB", label: "Used", cls: "c4" },
        { key: "vramTotalGB", label: "Total", cls: "c5", dashed: true }
      ], points, { minutes: minutes, yMax: 0, unit: " GB" });
    }

    function load() {
      return api("/api/workers/" + encodeURIComponent(workerId) + "/samples?minutes=" + minutes).then(function (rows) {
        points = rows.map(function (r) { var p = Object.assign({}, r); p.t = parseTime(r.t); return p; });
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
        points.push({ t: serverNow(), progress: g.progress, stageProgress: g.stageProgress });
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
    doc.title = w.displayName + " · goliat-monitor";
  }

  function screenshotViewer(workerId, shots) {
    var tabs = $("#shot-tabs");
    var img = $("#shot-img");
    var figure = img.parentElement;
    var empty = $("#shot-empty");
    var updated = $("#shot-updated");
    var selected = shots.length ? shots[0].tab : null;
    var list = shots;

    function url(shot) {
      return base + "/api/workers/" + encodeURIComponent(workerId) + "/screenshots/" + encodeURIComponent(shot.tab) + "?v=" + encodeURIComponent(shot.updatedAt || "");
    }

    function show() {
      var shot = list.filter(function (x) { return x.tab === selected; })[0] || list[0];
      empty.hidden = !!shot;
      figure.hidden = !shot;
      if (!shot) return;
      selected = shot.tab;
      var src = url(shot);
      if (img.getAttribute("src") !== src) img.setAttribute("src", src);
      img.setAttribute("alt", "Latest screenshot of GOLIAT's " + shot.tab.replace(/_/g, " ") + " tab");
      setText(updated, "updated " + fmt.ago(shot.updatedAt));
      updated.dataset.ago = shot.updatedAt || "";
      $$("[role=tab]", tabs).forEach(function (tab) { tab.setAttribute("aria-selected", tab.dataset.tab === selected ? "true" : "false"); tab.tabIndex = tab.dataset.tab === selected ? 0 : -1; });
    }

    function build() {
      tabs.textContent = "";
      list.forEach(function (shot) {
        var tab = h("a", { role: "tab", href: url(shot), "data-tab": shot.tab, text: shot.tab.replace(/_/g, " ") });
        tabs.append(tab);
      });
      show();
    }

    tabs.addEventListener("click", function (event) {
      var tab = event.target.closest("[role=tab]");
      if (!tab) return;
      event.preventDefault();
      selected = tab.dataset.tab;
      show();
    });
    tabs.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      var all = $$("[role=tab]", tabs);
      var i = all.findIndex(function (t) { return t.dataset.tab === selected; });
      var next = all[(i + (event.key === "ArrowRight" ? 1 : all.length - 1)) % all.length];
      if (next) { selected = next.dataset.tab; show(); next.focus(); event.preventDefault(); }
    });
    build();
    return {
      update: function (shotsNow) {
        var changed = JSON.stringify(shotsNow.map(function (x) { return x.tab; })) !== JSON.stringify(list.map(function (x) { return x.tab; }));
        list = shotsNow;
        if (changed) build(); else show();
      }
    };
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

  function workerPage(data) {
    var workerId = data.id;
    var historyMode = new URLSearchParams(window.location.search).has("before");
    var log = logConsole(workerId, historyMode);
    var charts = workerCharts(workerId);
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

    var form = $("#label-form");
    form.addEventListener("submit", function (event) {
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
        setText(msg, error.status === 401
          ? "Not allowed: this server needs the admin token. Open the dashboard under /t/<admin token>/ to edit labels."
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
      resync: function () {
        if (log.busy()) {
          setText($("#log-state"), "Some live updates were missed; reload the page to catch up.");
        } else {
          reloadPage();
        }
      }
    });
  }

  // ---- super studies -------------------------------------------------------------------------------

  function readJsonFile(file) {
    return file.text().then(function (text) {
      try {
        var value = JSON.parse(text);
        if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("it is not a JSON object");
        return value;
      } catch (e) {
        throw new Error(file.name + " is not valid JSON (" + e.message + ")");
      }
    });
  }

  function createForm() {
    var form = $("#create-form");
    if (!form) return;
    var msg = $("#cs-msg");
    var out = $("#cs-preview-out");
    var createButton = $("#cs-create");
    var previewButton = $("#cs-preview");
    var replaceWrap = $("#cs-replace-wrap");
    var strategy = $("#cs-strategy");
    var preview = null;

    function say(text, isError) {
      setText(msg, text);
      msg.classList.toggle("err", !!isError);
    }

    function showStrategyFields() {
      $$("[data-for-strategy]", form).forEach(function (n) { n.hidden = n.dataset.forStrategy !== strategy.value; });
    }

    function invalidate() {
      if (!preview) return;
      preview = null;
      createButton.disabled = true;
      out.hidden = true;
      say("The inputs changed: preview again before creating.");
    }

    function render(result) {
      setText($("#cs-plan"), result.plan);
      setText($("#cs-total"), result.totalSimulations + " simulation" + (result.totalSimulations === 1 ? "" : "s") + " in " + result.assignments.length + " assignment" + (result.assignments.length === 1 ? "" : "s"));
      var warnings = $("#cs-warnings");
      warnings.textContent = "";
      (result.warnings || []).forEach(function (w) { warnings.append(h("li", { class: "warn", text: w })); });
      var tbody = $("#cs-assignments tbody");
      tbody.textContent = "";
      result.assignments.forEach(function (a) {
        tbody.append(h("tr", null, [
          h("td", { class: "num", text: a.index }),
          h("td", { class: "wrap", text: a.summary }),
          h("td", { class: "num", "data-f": "size", text: a.size })
        ]));
      });
      out.hidden = false;
    }

    function readInputs() {
      var configFile = $("#cs-config").files[0];
      if (!configFile) return Promise.reject(new Error("Choose a GOLIAT config file first."));
      var parentFiles = Array.prototype.slice.call($("#cs-parents").files);
      return Promise.all([readJsonFile(configFile)].concat(parentFiles.map(readJsonFile))).then(function (values) {
        var parents = {};
        parentFiles.forEach(function (f, i) { parents[f.name] = values[i + 1]; });
        return { config: values[0], parents: parents };
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      preview = null;
      createButton.disabled = true;
      out.hidden = true;
      replaceWrap.hidden = true;
      $("#cs-replace").checked = false;
      previewButton.disabled = true;
      say("Splitting…");
      readInputs().then(function (inputs) {
        var body = { config: inputs.config, parentConfigs: inputs.parents, strategy: strategy.value };
        if (strategy.value === "auto" && $("#cs-splits").value) body.numSplits = Number($("#cs-splits").value);
        if (strategy.value === "custom") body.frequencyGroups = $("#cs-groups").value;
        return postJson("/api/super-studies/split", body).then(function (result) {
          preview = { result: result, config: inputs.config, parents: inputs.parents };
          render(result);
          createButton.disabled = false;
          say("Preview ready: check it, then create the study.");
        });
      }).catch(function (error) {
        say("Cannot split this config: " + error.message, true);
      }).then(function () { previewButton.disabled = false; });
    });

    createButton.addEventListener("click", function () {
      if (!preview) return;
      var name = $("#cs-name").value.trim();
      if (!name) {
        say("Give the study a name.", true);
        $("#cs-name").focus();
        return;
      }
      var body = {
        name: name,
        description: $("#cs-description").value.trim() || null,
        baseConfig: preview.config,
        parentConfigs: preview.parents,
        splitStrategy: preview.result.strategy,
        maxAttempts: Number($("#cs-attempts").value) || 3,
        retryFatal: $("#cs-retry-fatal").checked,
        replace: $("#cs-replace").checked,
        assignments: preview.result.assignments
      };
      createButton.disabled = true;
      say("Creating…");
      postJson("/api/super-studies", body).then(function (study) {
        say("Created.");
        window.location.href = base + "/super-studies/" + encodeURIComponent(study.id);
      }).catch(function (error) {
        createButton.disabled = false;
        if (error.status === 409) {
          replaceWrap.hidden = false;
          say("A study named \u201c" + name + "\u201d already exists. Tick \u201creplace\u201d and create again to replace it, or choose another name.", true);
        } else {
          say(error.status === 401 ? ADMIN_NEEDED : "Could not create the study: " + error.message, true);
        }
      });
    });

    strategy.addEventListener("change", function () { showStrategyFields(); invalidate(); });
    ["#cs-config", "#cs-parents", "#cs-splits", "#cs-groups"].forEach(function (sel) {
      $(sel).addEventListener("change", invalidate);
    });
    $("#cs-name").addEventListener("input", function () { replaceWrap.hidden = true; $("#cs-replace").checked = false; });
    showStrategyFields();
  }

  function studiesPage() {
    createForm();
    var body = $("#studies-table tbody");
    var rows = new Map();
    $$("tr[data-id]", body).forEach(function (row) { rows.set(row.dataset.id, row); });
    connectLive({
      study: function (s) {
        var row = rows.get(s.id);
        if (s.deleted) {
          if (row) { row.remove(); rows.delete(s.id); }
        } else {
          if (!row) {
            row = $("#study-row-template").content.querySelector("tr").cloneNode(true);
            row.dataset.id = s.id;
            var created = row.lastElementChild;
            created.textContent = "";
            created.append(timeEl(s.createdAt));
            rows.set(s.id, row);
            body.prepend(row);
          }
          fillStudy(row, s);
        }
        setText($("#study-count"), rows.size);
        $("#studies-empty").hidden = rows.size > 0;
      },
      resync: reloadPage
    });
  }

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

  var PREVIEW_LIMIT = 2 * 1024 * 1024;
  var TEXT_EXT = /\.(log|txt|csv|md|cfg|ini|yaml|yml|out|py)$/i;
  var IMAGE_EXT = /\.(png|jpe?g|gif|webp)$/i;

  function resultExplorer(studyId) {
    var tree = $("#results-tree");
    var summary = $("#results-summary");
    var preview = $("#results-preview");
    var previewBody = $("#preview-body");
    var open = new Set();

    function fileUrl(path) { return base + "/api/super-studies/" + encodeURIComponent(studyId) + "/results/file?path=" + encodeURIComponent(path); }

    function showPreview(node) {
      preview.hidden = false;
      setText($("#preview-name"), node.path);
      var link = $("#preview-download");
      link.setAttribute("href", fileUrl(node.path));
      link.setAttribute("download", node.name);
      previewBody.textContent = "";
      if (IMAGE_EXT.test(node.name)) {
        previewBody.append(h("img", { src: fileUrl(node.path), alt: node.name, class: "preview-img" }));
        return;
      }
      var isJson = /\.json$/i.test(node.name);
      if (!isJson && !TEXT_EXT.test(node.name)) {
        previewBody.append(h("p", { class: "muted", text: "No preview for this kind of file; download it to open it." }));
        return;
      }
      if (node.size > PREVIEW_LIMIT) {
        previewBody.append(h("p", { class: "muted", text: "This file is " + fmt.size(node.size) + "; download it to read it." }));
        return;
      }
      var pre = h("pre", { class: "code", text: "Loading…" });
      previewBody.append(pre);
      fetch(fileUrl(node.path), { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error(r.status + " " + r.statusText);
        return r.text();
      }).then(function (text) {
        if (isJson) {
          try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* show as it is */ }
        }
        pre.textContent = text;
      }).catch(function (error) { pre.textContent = "Could not load: " + error.message; });
    }

    function nodeEl(node) {
      if (node.type === "directory") {
        var details = h("details", { class: "dir" });
        if (open.has(node.path)) details.open = true;
        details.addEventListener("toggle", function () { if (details.open) open.add(node.path); else open.delete(node.path); });
        details.append(h("summary", null, [h("span", { class: "dir-name", text: node.name + "/" })]));
        var list = h("ul");
        (node.children || []).forEach(function (child) { list.append(h("li", null, [nodeEl(child)])); });
        details.append(list);
        return details;
      }
      var button = h("button", { type: "button", class: "link file-name", text: node.name, title: "Preview " + node.path });
      button.addEventListener("click", function () { showPreview(node); });
      return h("div", { class: "file" }, [
        button,
        h("span", { class: "size", text: fmt.size(node.size) }),
        h("a", { class: "small", href: fileUrl(node.path), download: node.name, text: "download", "aria-label": "Download " + node.path })
      ]);
    }

    function load() {
      return api("/api/super-studies/" + encodeURIComponent(studyId) + "/results/list").then(function (listing) {
        tree.textContent = "";
        setText(summary, listing.totalFiles + " file" + (listing.totalFiles === 1 ? "" : "s") + ", " + fmt.size(listing.totalSize));
        if (!listing.tree.length) {
          tree.append(h("p", { class: "muted", text: "No result files yet. Workers upload them as each simulation finishes." }));
          return;
        }
        var withFiles = new Set((listing.files || []).map(function (f) { return f.assignmentId; }));
        $$("#assignments tbody tr[data-id]").forEach(function (row) {
          var zip = row.querySelector("a[download]");
          if (zip) zip.hidden = !withFiles.has(row.dataset.id);
        });
        var ul = h("ul", { class: "root" });
        listing.tree.forEach(function (node) { ul.append(h("li", null, [nodeEl(node)])); });
        tree.append(ul);
      }).catch(function (error) {
        tree.textContent = "";
        tree.append(h("p", { class: "muted", text: "Could not list the result files: " + error.message }));
      });
    }

    $("#preview-close").addEventListener("click", function () { preview.hidden = true; previewBody.textContent = ""; });
    load();
    return { reload: throttle(load, 2000) };
  }

  function studyPage(data) {
    var studyId = data.study.id;
    var summaryParts = ["#study-head", "#study-totals", "#study-master"].map(function (sel) { return $(sel); });
    var body = $("#assignments tbody");
    var rows = new Map();
    $$("tr[data-id]", body).forEach(function (row) { rows.set(row.dataset.id, row); });
    var explorer = resultExplorer(studyId);
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
      },
      assignments: function (d) {
        if (d.id !== studyId) return;
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
      results: function (d) { if (d.id === studyId) explorer.reload(); },
      resync: reloadPage
    });
  }

  // ---- start -------------------------------------------------------------------------------------

  function shortcuts() {
    doc.addEventListener("keydown", function (event) {
      if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
      var tag = (event.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "textarea" || tag === "select" || event.target.isContentEditable) return;
      var target = $("[data-shortcut='/']");
      if (target) { event.preventDefault(); target.focus(); }
    });
  }

  function start() {
    base = doc.body.dataset.base || "";
    var now = Number(doc.body.dataset.now);
    if (now) skewMs = now * 1000 - Date.now();
    setupTheme();
    shortcuts();
    localizeTimes(doc);
    $$(".ll time.ts").forEach(function (n) { setText(n, fmt.clock(n.getAttribute("datetime"))); });
    var dataEl = $("#page-data");
    var data = dataEl ? JSON.parse(dataEl.textContent) : {};
    var page = doc.body.dataset.page;
    if (page === "overview") overviewPage(data);
    else if (page === "worker") workerPage(data);
    else if (page === "super_studies") studiesPage(data);
    else if (page === "super_study") studyPage(data);
    tickClocks();
    setInterval(tickClocks, 1000);
  }

  if (doc.readyState === "loading") doc.addEventListener("DOMContentLoaded", start);
  else start();
})();
