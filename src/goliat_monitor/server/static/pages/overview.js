/* The overview page: worker cards and active super studies, live; filtering and sorting in place.
 *
 * Which workers a status filter or a search shows, the order of each sort and the totals are
 * decided once, on the server (server/overview.py): every worker arrives, in the page data and in
 * each live update, with its `overview` facets, and this module only matches and compares them.
 * A live update therefore never disagrees with what a reload of the same URL renders.
 */
import { startPage } from "../app.js";
import { fillStudy, fillWorkerCard } from "../lib/cards.js";
import { $, $$, setText, throttle } from "../lib/dom.js";
import { connectLive, reloadPage } from "../lib/live.js";

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

function init(data) {
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

startPage(init);
