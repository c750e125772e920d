/* The latest screenshot of each GOLIAT GUI tab, as tabs on the worker page.
   A shot's `tab` is its field name as GOLIAT sent it (`Disk_I/O`): it addresses the image, encoded
   as one URL segment; its `label` (`Disk I/O`) is what the page shows. */
import { base } from "./api.js";
import { $, $$, h, setText } from "./dom.js";
import { fmt } from "./format.js";

export function screenshotViewer(workerId, shots) {
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
    img.setAttribute("alt", "Latest screenshot of GOLIAT's " + shot.label + " tab");
    setText(updated, "updated " + fmt.ago(shot.updatedAt));
    updated.dataset.ago = shot.updatedAt || "";
    $$("[role=tab]", tabs).forEach(function (tab) { tab.setAttribute("aria-selected", tab.dataset.tab === selected ? "true" : "false"); tab.tabIndex = tab.dataset.tab === selected ? 0 : -1; });
  }

  function build() {
    tabs.textContent = "";
    list.forEach(function (shot) {
      var tab = h("a", { role: "tab", href: url(shot), "data-tab": shot.tab, text: shot.label });
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
