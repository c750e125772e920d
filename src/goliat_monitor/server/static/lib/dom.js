/* DOM helpers. Data only ever reaches the page through textContent and attributes, never
 * innerHTML, so a log line such as <img src=x onerror=alert(1)> is shown as text. */
import { fmt } from "./format.js";

const doc = document;

export function $(sel, scope) { return (scope || doc).querySelector(sel); }
export function $$(sel, scope) { return Array.prototype.slice.call((scope || doc).querySelectorAll(sel)); }

export function h(tag, props, children) {
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

export function setText(node, text) {
  text = text === null || text === undefined ? "" : String(text);
  if (node && node.textContent !== text) node.textContent = text;
}

export function field(scope, name) { return scope.querySelector('[data-f="' + name + '"]'); }
export function setField(scope, name, text) { $$('[data-f="' + name + '"]', scope).forEach(function (n) { setText(n, text); }); }
export function setBar(scope, name, value) {
  var bar = field(scope, name);
  if (bar) bar.value = value || 0;
}
export function timeEl(iso, kind) {
  if (!iso) return doc.createTextNode("—");
  return h("time", { datetime: iso, "data-fmt": kind || "datetime", text: (fmt[kind || "datetime"])(iso) });
}

export function throttle(fn, ms) {
  var last = 0, timer = null;
  return function () {
    var wait = last + ms - Date.now();
    if (wait <= 0) { last = Date.now(); fn(); return; }
    if (!timer) timer = setTimeout(function () { timer = null; last = Date.now(); fn(); }, wait);
  };
}

export function statusClass(status) { return "pill status-" + String(status || "none").toLowerCase(); }
