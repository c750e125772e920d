/* How live values are shown: the same text the server's Jinja filters render (pages.py). */

// The server clock minus the browser's: relative times count from the server's "now".
let skewMs = Number(document.body.dataset.now) ? Number(document.body.dataset.now) * 1000 - Date.now() : 0;

/** Align relative times with the server clock, given its time in seconds. */
export function setServerTime(seconds) { skewMs = seconds * 1000 - Date.now(); }

export function serverNow() { return Date.now() + skewMs; }
export function parseTime(iso) { var t = iso ? Date.parse(iso) : NaN; return isNaN(t) ? null : t; }
function pad(n) { return n < 10 ? "0" + n : String(n); }

export const fmt = {
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
  hours: function (h) { return h === null || h === undefined ? "—" : Number(h).toFixed(2) + " h"; },
  money: function (v, currency) {
    if (v === null || v === undefined) return "—";
    var text = Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return currency ? text + " " + currency : text;
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

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** GOLIAT's console colours arrive as escape codes in some lines; the log shows colour by type. */
export function stripAnsi(text) { return String(text === null || text === undefined ? "" : text).replace(ANSI, ""); }
