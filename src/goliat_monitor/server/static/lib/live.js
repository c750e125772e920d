/* The page's live connection to GET /api/events. */
import { base } from "./api.js";
import { $, setText } from "./dom.js";
import { setServerTime } from "./format.js";

const doc = document;

/* One EventSource per page. The browser reconnects by itself and sends Last-Event-ID; if it
 * gives up (HTTP error), we open a new one with the last id in the URL, backing off. */
export function connectLive(handlers) {
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
      if (typeof data.serverTime === "number") setServerTime(data.serverTime);
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

export function reloadPage() { window.location.reload(); }
