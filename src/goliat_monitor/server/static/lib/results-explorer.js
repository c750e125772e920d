/* The super study page's result files: a tree of folders, previews of text, JSON and images. */
import { api, base } from "./api.js";
import { $, $$, h, setText, throttle } from "./dom.js";
import { fmt } from "./format.js";

const PREVIEW_LIMIT = 2 * 1024 * 1024;
const TEXT_EXT = /\.(log|txt|csv|md|cfg|ini|yaml|yml|out|py)$/i;
const IMAGE_EXT = /\.(png|jpe?g|gif|webp)$/i;

export function resultExplorer(studyId) {
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
  return {
    reload: throttle(load, 2000),
    /* Preview one file ({name, path, size}), as a click on it in the tree would. */
    show: function (node) {
      showPreview(node);
      if (preview.scrollIntoView) preview.scrollIntoView({ block: "nearest" });
    }
  };
}
