/* The one classic (non-module) script, loaded in <head> on purpose: modules run only after the
 * page is parsed, but the saved theme and the "js" class (which hides the no-JS controls) must be
 * set before the first paint, or the page flashes. Everything else lives in the ES modules. */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");
  try {
    var saved = localStorage.getItem("goliat-monitor-theme");
    if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);
  } catch (e) {
    /* storage blocked: follow the system theme */
  }
})();
